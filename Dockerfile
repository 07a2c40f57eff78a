# syntax=docker/dockerfile:1
# The `subsync` image: one binary for every process (serve, intake, worker, migrate, operator
# commands). Build: `docker build -t subsync .`   Run: see docs/production.md.

# ---- build ---------------------------------------------------------------------------------
# The workspace needs rustc >= 1.94 (edition 2024); pin the minor so builds are repeatable.
# The slim image already has gcc and libc6-dev, which the bundled SQLite (libsqlite3-sys)
# needs; nothing links OpenSSL (no TLS in sqlx/reqwest), so no -dev packages are required.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# The whole workspace (minus .dockerignore): `cargo build -p` still loads every member's
# manifest, and crates/queue/build.rs embeds migrations/ into the binary, so the runtime
# needs no files beside it.
COPY . .

# Dependency caching: the registry and `target/` live in BuildKit cache mounts, so a rebuild
# after a code change recompiles only the workspace crates, not the ~230 dependencies. (A
# manifest-only layer would need a stub source per crate, which rots as crates are added.)
# Cache mounts are not part of the image, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p subsync-cli \
    && install -D -m 0755 target/release/subsync /out/subsync

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates only. The binary needs no shared libraries beyond glibc (SQLite is compiled
# in, and it has no TLS stack: TLS is terminated in front of it, see docs/production.md);
# the CA bundle is the one thing a future HTTPS client would need.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Never run as root: a fixed uid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 subsync \
    && useradd --system --uid 10001 --gid subsync --home-dir /data --shell /usr/sbin/nologin subsync \
    && install -d -o subsync -g subsync -m 0750 /data

COPY --from=build /out/subsync /usr/local/bin/subsync

# The default DATABASE_URL is `sqlite:subsync.db`, relative to the working directory: /data
# is writable by the service user (mount a volume there to keep it). PostgreSQL deployments
# (docker-compose.yml) never write here.
WORKDIR /data
USER 10001:10001

# 8080: public webhook intake (POST /webhooks/stripe, /healthz, /readyz, /metrics).
# 8081: private admin API and dashboard (only when SUBSYNC_ADMIN_TOKEN is set).
# Both default to 127.0.0.1 inside the binary; set SUBSYNC_LISTEN / SUBSYNC_ADMIN_LISTEN to
# 0.0.0.0:… in a container, or nothing outside it can connect.
EXPOSE 8080 8081

ENTRYPOINT ["subsync"]
CMD ["serve"]
