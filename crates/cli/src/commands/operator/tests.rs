//! The operator commands through `run_with`, on SQLite and on PostgreSQL. Also checks that the
//! clap types parse the documented command lines when mounted in a binary.

mod support;

use clap::Parser;
use serde_json::Value;
use subsync_queue::{JobFilter, JobState, Store};
use support::{Backend, Q, TestDb, both_backends, seed_dead, seed_many_dead, seed_pending};

use super::{CliError, Command, OutputOptions, run_with};
use crate::commands::groups::GroupsCommand;
use crate::commands::jobs::{ActionArgs, FilterArgs, JobsCommand, ListArgs, ShowArgs};
use crate::options::ActorArgs;

both_backends!(
    list_tables_and_json,
    show_by_id_and_event_id,
    retry_and_cancel_by_id,
    bulk_retry_asks_first_and_shows_progress,
    groups_and_stats,
);

struct Out {
    out: String,
    err: String,
}

async fn exec(store: &Store, cmd: Command, json: bool, yes: bool, stdin: &str) -> Result<Out, CliError> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
    run_with(store, cmd, &mut out, &mut err, &mut input, OutputOptions { json, yes }).await?;
    Ok(Out { out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() })
}

fn list(filter: FilterArgs) -> Command {
    Command::Jobs(JobsCommand::List(ListArgs { filter, limit: 50, offset: 0 }))
}

fn show(id: &str) -> Command {
    Command::Jobs(JobsCommand::Show(ShowArgs { id: id.into(), queue: None }))
}

fn retry_ids(ids: &[&str]) -> Command {
    Command::Jobs(JobsCommand::Retry(ActionArgs {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        filter: FilterArgs::default(),
        actor: ActorArgs { actor: Some("tester".into()) },
    }))
}

async fn count(store: &Store, state: JobState) -> u64 {
    store.count(&JobFilter { states: vec![state], ..JobFilter::default() }).await.unwrap()
}

async fn list_tables_and_json(b: Backend) {
    let t = TestDb::new(b).await;
    let dead = seed_dead(&t.store, "evt_l1", "sub_l", "upstream 500\x1b[31m").await;
    seed_pending(&t.store, "evt_l2", "sub_l").await;

    let table = exec(&t.store, list(FilterArgs::default()), false, false, "").await.unwrap().out;
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID")
            && header.contains("STATE")
            && header.contains("EVENT ID")
            && header.contains("LAST ERROR"),
        "{table}"
    );
    assert!(table.contains(&dead.to_string()) && table.contains("evt_l2"), "{table}");
    assert!(table.contains("upstream 500\\u{1b}[31m"), "escape sequences are neutralised: {table}");
    assert!(table.trim_end().ends_with("showing 1-2 of 2"), "{table}");
    // Columns line up: every row has STATE at the header's offset.
    let state_col = header.find("STATE").unwrap();
    for line in table.lines().skip(1).take(2) {
        let rest = &line[state_col..];
        assert!(rest.starts_with("dead") || rest.starts_with("pending"), "misaligned: {line}");
    }

    let dead_only = FilterArgs {
        state: vec!["dead".into()],
        group: Some("sub_l".into()),
        since: Some("1h".into()),
        ..FilterArgs::default()
    };
    let json: Value =
        serde_json::from_str(&exec(&t.store, list(dead_only), true, false, "").await.unwrap().out).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["jobs"][0]["id"], dead.to_string());

    let paged = Command::Jobs(JobsCommand::List(ListArgs { filter: FilterArgs::default(), limit: 1, offset: 0 }));
    let out = exec(&t.store, paged, false, false, "").await.unwrap().out;
    assert!(out.contains("showing 1-1 of 2 (next page: --offset 1)"), "{out}");

    let none = FilterArgs { key: Some("evt_none".into()), ..FilterArgs::default() };
    let out = exec(&t.store, list(none), false, false, "").await.unwrap().out;
    assert!(out.contains("no jobs match (key=evt_none)"), "{out}");

    for (filter, needle) in [
        (FilterArgs { state: vec!["zombie".into()], ..FilterArgs::default() }, "unknown job state `zombie`"),
        (FilterArgs { since: Some("last tuesday".into()), ..FilterArgs::default() }, "bad timestamp `last tuesday`"),
    ] {
        let e = exec(&t.store, list(filter), false, false, "").await.err().expect("an error");
        assert!(e.to_string().contains(needle), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
    let too_many = Command::Jobs(JobsCommand::List(ListArgs { filter: FilterArgs::default(), limit: 5000, offset: 0 }));
    let e = exec(&t.store, too_many, false, false, "").await.err().expect("an error");
    assert!(e.to_string().contains("limit `5000` is out of range"), "{e}");
    t.close().await;
}

async fn show_by_id_and_event_id(b: Backend) {
    let t = TestDb::new(b).await;
    let dead = seed_dead(&t.store, "evt_s1", "sub_s", "line one\nline two").await;
    let by_event = exec(&t.store, show("evt_s1"), false, false, "").await.unwrap().out;
    assert!(by_event.contains(&format!("id:           {dead}")), "{by_event}");
    assert!(by_event.contains("state:        dead"), "{by_event}");
    assert!(by_event.contains("attempts:     1 of 12"), "{by_event}");
    assert!(by_event.contains("last error:\n  line one\n  line two"), "{by_event}");
    assert!(by_event.contains("\"event\": \"evt_s1\""), "payload pretty-printed: {by_event}");
    let by_id: Value =
        serde_json::from_str(&exec(&t.store, show(&dead.to_string()), true, false, "").await.unwrap().out).unwrap();
    assert_eq!(by_id["unique_key"], "evt_s1");

    let e = exec(&t.store, show("evt_missing"), false, false, "").await.err().expect("unknown id");
    assert_eq!(e.to_string(), "no job with id or event id `evt_missing`");
    assert_eq!(e.exit_code(), 1);
    t.close().await;
}

async fn retry_and_cancel_by_id(b: Backend) {
    let t = TestDb::new(b).await;
    let d1 = seed_dead(&t.store, "evt_r1", "sub_r1", "boom").await;
    let d2 = seed_dead(&t.store, "evt_r2", "sub_r2", "boom").await;

    let out = exec(&t.store, retry_ids(&["evt_r1", &d2.to_string()]), false, false, "").await.unwrap().out;
    assert!(out.contains(&format!("retried {d1} (evt_r1 was dead)")), "{out}");
    assert!(out.contains(&format!("retried {d2}")), "{out}");
    assert_eq!(count(&t.store, JobState::Dead).await, 0);

    // Both are pending and due now: nothing to do, and that is an error naming the state.
    let e = exec(&t.store, retry_ids(&["evt_r1"]), false, false, "").await.err().expect("conflict");
    assert!(e.to_string().contains("is pending"), "{e}");
    // An unknown id among known ones changes nothing.
    let cancel = |ids: &[&str]| {
        Command::Jobs(JobsCommand::Cancel(ActionArgs {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            filter: FilterArgs::default(),
            actor: ActorArgs::default(),
        }))
    };
    let e = exec(&t.store, cancel(&["evt_r1", "evt_nope"]), false, false, "").await.err().expect("unknown");
    assert_eq!(e.to_string(), "no job with id or event id `evt_nope`");
    assert_eq!(count(&t.store, JobState::Cancelled).await, 0);

    let json: Value =
        serde_json::from_str(&exec(&t.store, cancel(&["evt_r1", "evt_r2"]), true, false, "").await.unwrap().out)
            .unwrap();
    assert_eq!(json["cancelled"], 2);
    assert_eq!(count(&t.store, JobState::Cancelled).await, 2);
    t.close().await;
}

async fn bulk_retry_asks_first_and_shows_progress(b: Backend) {
    let t = TestDb::new(b).await;
    seed_many_dead(&t.store, 600, "bk").await;
    let bulk = || {
        Command::Jobs(JobsCommand::Retry(ActionArgs {
            ids: Vec::new(),
            filter: FilterArgs { state: vec!["dead".into()], since: Some("1h".into()), ..FilterArgs::default() },
            actor: ActorArgs { actor: Some("bulk-operator".into()) },
        }))
    };

    // No answer / "n": nothing happens, non-zero exit.
    for answer in ["", "n\n", "nope\n"] {
        let e = exec(&t.store, bulk(), false, false, answer).await.err().expect("not confirmed");
        assert!(matches!(e, CliError::NotConfirmed(_)), "{e}");
        assert!(e.to_string().contains("--yes"), "{e}");
    }
    assert_eq!(count(&t.store, JobState::Dead).await, 600);

    // "y": the question and chunked progress go to stderr, the result to stdout.
    let done = exec(&t.store, bulk(), false, false, "y\n").await.unwrap();
    assert!(done.err.starts_with("retry 600 job(s) matching state=dead since=1h? [y/N] "), "{}", done.err);
    assert!(done.err.contains("retried 500 … 500/600 processed"), "{}", done.err);
    assert!(done.err.contains("retried 600 … 600/600 processed"), "{}", done.err);
    assert_eq!(done.out, "retried 600 of 600 matching job(s)\n");
    assert_eq!(count(&t.store, JobState::Dead).await, 0);
    // One audit entry for the bulk action, with its filter and counts; none for the refusals.
    let filter = subsync_admin::audit::AuditFilter { limit: 10, ..Default::default() };
    let entries = subsync_admin::audit::list(&t.store, &filter).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!((e.actor.as_str(), e.via.as_str(), e.action.as_str()), ("bulk-operator", "cli", "bulk_retry"));
    assert_eq!(
        (e.target.as_str(), e.detail.as_deref(), e.jobs, e.ok),
        ("state=dead since=1h", Some("matched 600"), 600, true)
    );

    // --yes skips the question; an empty match is not an error.
    let again = exec(&t.store, bulk(), true, true, "").await.unwrap();
    assert!(again.err.is_empty(), "{}", again.err);
    let json: Value = serde_json::from_str(&again.out).unwrap();
    assert_eq!(json["retried"], 0);
    assert_eq!(json["matched"], 0);

    // Bulk cancel of the now-pending jobs, by group.
    let cancel = Command::Jobs(JobsCommand::Cancel(ActionArgs {
        ids: Vec::new(),
        filter: FilterArgs { state: vec!["pending".into()], group: Some("sub_bk_3".into()), ..FilterArgs::default() },
        actor: ActorArgs::default(),
    }));
    let out = exec(&t.store, cancel, false, true, "").await.unwrap().out;
    assert_eq!(out, "cancelled 1 of 1 matching job(s)\n");

    // Neither ids nor a state: a usage error that says what to do.
    let e = exec(&t.store, Command::Jobs(JobsCommand::Retry(ActionArgs::default())), false, true, "")
        .await
        .err()
        .expect("usage");
    assert!(matches!(e, CliError::Usage(_)));
    assert!(e.to_string().contains("--state"), "{e}");
    assert_eq!(e.exit_code(), 2);
    t.close().await;
}

async fn groups_and_stats(b: Backend) {
    let t = TestDb::new(b).await;
    let empty = exec(&t.store, Command::Groups(GroupsCommand::Running), false, false, "").await.unwrap().out;
    assert_eq!(empty, "no group is running a job\n");

    seed_dead(&t.store, "evt_g0", "sub_g0", "boom").await;
    seed_pending(&t.store, "evt_g1", "sub_g1").await;
    let claimed = t.store.claim(Q, "worker-9", 5).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let table = exec(&t.store, Command::Groups(GroupsCommand::Running), false, false, "").await.unwrap().out;
    assert!(table.starts_with("GROUP"), "{table}");
    assert!(table.contains("sub_g1") && table.contains("worker-9"), "{table}");
    let json: Value = serde_json::from_str(
        &exec(&t.store, Command::Groups(GroupsCommand::Running), true, false, "").await.unwrap().out,
    )
    .unwrap();
    assert_eq!(json["groups"][0]["group_key"], "sub_g1");

    let text = exec(&t.store, Command::Stats, false, false, "").await.unwrap().out;
    assert!(text.starts_with("QUEUE"), "{text}");
    assert!(text.contains("DEAD") && text.contains("(all)"), "{text}");
    let stripe_row = text.lines().find(|l| l.starts_with(Q)).expect("a row per queue");
    let cells: Vec<&str> = stripe_row.split_whitespace().collect();
    assert_eq!(cells, vec![Q, "0", "1", "0", "1", "0"], "pending running succeeded dead cancelled: {text}");
    assert!(text.contains("oldest due job waiting: "), "{text}");
    assert!(text.contains("running groups:         1"), "{text}");
    assert!(text.contains("1m 0.02/s (0 ok, 1 dead)"), "{text}");
    let json: Value =
        serde_json::from_str(&exec(&t.store, Command::Stats, true, false, "").await.unwrap().out).unwrap();
    assert_eq!(json["totals"]["dead"], 1);
    assert_eq!(json["running_groups"], 1);
    assert_eq!(json["throughput"][2]["window_minutes"], 15);
    t.close().await;
}

/// How the lead mounts the commands: as a subcommand enum plus flattened output flags.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: OutputOptions,
}

#[test]
fn clap_parses_the_documented_command_lines() {
    let cli = Cli::try_parse_from([
        "subsync",
        "jobs",
        "list",
        "--state",
        "dead",
        "--state",
        "cancelled",
        "--group",
        "sub_1",
        "--since",
        "2h",
        "--limit",
        "10",
    ])
    .unwrap();
    let Command::Jobs(JobsCommand::List(args)) = cli.command else { panic!("not a list") };
    assert_eq!(args.filter.state, vec!["dead", "cancelled"]);
    assert_eq!(args.limit, 10);

    let cli = Cli::try_parse_from(["subsync", "jobs", "retry", "--state", "dead", "--yes", "--json"]).unwrap();
    assert!(cli.output.yes && cli.output.json);
    let cli = Cli::try_parse_from(["subsync", "--json", "jobs", "retry", "evt_1", "evt_2"]).unwrap();
    let Command::Jobs(JobsCommand::Retry(args)) = cli.command else { panic!("not a retry") };
    assert_eq!(args.ids, vec!["evt_1", "evt_2"]);
    assert!(
        Cli::try_parse_from(["subsync", "jobs", "retry", "evt_1", "--state", "dead"]).is_err(),
        "ids and a filter conflict"
    );
    assert!(Cli::try_parse_from(["subsync", "jobs", "show"]).is_err());
    assert!(matches!(
        Cli::try_parse_from(["subsync", "groups", "running"]).unwrap().command,
        Command::Groups(GroupsCommand::Running)
    ));
    assert!(matches!(Cli::try_parse_from(["subsync", "stats", "-y"]).unwrap().command, Command::Stats));
}
