//! Tier file parsing, validation and price mapping.

use super::*;

fn p(id: &str, key: Option<&str>) -> PriceRef {
    PriceRef::new(id, key)
}

const MINIMAL: &str = r#"
order = ["free", "pro"]
[tiers.free]
records = true
export = true
obligations.view = true
[tiers.pro]
records = true
export = true
obligations.view = true
vat.returns = true
"#;

fn with_prices(prices: &str) -> Result<TierConfig, ConfigError> {
    TierConfig::from_toml_str(&format!("{MINIMAL}{prices}"))
}

#[test]
fn default_config_is_valid_and_ranked() {
    let cfg = TierConfig::default_config();
    let names: Vec<_> = cfg.tiers().iter().map(TierName::as_str).collect();
    assert_eq!(names, ["free", "basic", "pro", "agent"]);
    for t in cfg.tiers() {
        assert!(cfg.features(t).unwrap().keeps_read_and_export(), "{t}");
    }
    let free = cfg.free_features();
    assert!(!free.itsa.quarterly && !free.vat.returns);
    let basic = cfg.features(&"basic".into()).unwrap();
    assert_eq!(basic.sources.max, SourceLimit::Limited(1));
    assert!(basic.itsa.quarterly && basic.itsa.final_declaration);
    assert!(!basic.sources.foreign_property && !basic.vat.returns);
    let pro = cfg.features(&"pro".into()).unwrap();
    assert_eq!(pro.sources.max, SourceLimit::Unlimited);
    assert!(pro.sources.foreign_property && pro.sources.uk_property && pro.vat.returns);
    assert_eq!(pro.agent.clients, 0);
    let agent = cfg.features(&"agent".into()).unwrap();
    assert_eq!(agent.agent.clients, 500);
    assert!(agent.vat.returns && agent.sources.foreign_property);
    for key in ["basic_monthly", "basic_yearly", "pro_monthly", "pro_yearly", "agent_monthly", "agent_yearly"] {
        let tier = cfg.tier_for_price(&p("price_x", Some(key))).unwrap();
        assert!(key.starts_with(tier.as_str()), "{key} -> {tier}");
    }
}

#[test]
fn lookup_key_wins_over_id() {
    let cfg = with_prices(
        r#"
[[prices]]
lookup_key = "k_free"
tier = "free"
[[prices]]
id = "price_1"
tier = "pro"
"#,
    )
    .unwrap();
    assert_eq!(cfg.tier_for_price(&p("price_1", Some("k_free"))).unwrap(), TierName::free());
    // id mapping is the fallback when the lookup_key is absent or unmapped.
    assert_eq!(cfg.tier_for_price(&p("price_1", None)).unwrap().as_str(), "pro");
    assert_eq!(cfg.tier_for_price(&p("price_1", Some("other"))).unwrap().as_str(), "pro");
}

#[test]
fn unmapped_price_is_an_error_naming_the_price() {
    let cfg = TierConfig::default_config();
    // Only when no price of the subscription maps (an unmapped extra beside a plan is
    // ignored instead: see `an_unmapped_extra_never_locks_out_a_paying_user`).
    let e = cfg.tier_for_prices(&[p("price_zz", Some("nope")), p("price_zy", None)]).unwrap_err();
    assert_eq!(e, UnmappedPrice { price_id: "price_zz".into(), lookup_key: Some("nope".into()) });
    assert!(e.to_string().contains("price_zz") && e.to_string().contains("nope"));
    let e = cfg.tier_for_price(&p("price_q", None)).unwrap_err();
    assert!(e.to_string().contains("<none>"));
}

#[test]
fn an_unmapped_extra_never_locks_out_a_paying_user() {
    let cfg = TierConfig::default_config();
    let plan = p("price_agent", Some("agent_yearly"));
    let extra = p("price_extra_client", Some("extra_client"));
    let decided = cfg.plan_for_prices(&[extra.clone(), plan]).unwrap();
    assert_eq!(decided.tier.as_str(), "agent");
    assert_eq!(
        decided.ignored,
        vec![UnmappedPrice { price_id: "price_extra_client".into(), lookup_key: Some("extra_client".into()) }]
    );
    // Only unmapped prices: today's rule (an error for an operator) unless the file says free.
    assert!(cfg.plan_for_prices(std::slice::from_ref(&extra)).is_err());
    let lenient =
        TierConfig::from_toml_str(&DEFAULT_TIERS_TOML.replace("unmapped = \"dead\"", "unmapped = \"free\"")).unwrap();
    assert_eq!(lenient.unmapped_policy(), UnmappedPolicy::Free);
    let decided = lenient.plan_for_prices(std::slice::from_ref(&extra)).unwrap();
    assert_eq!((decided.tier, decided.ignored.len()), (TierName::free(), 1));
    let e = TierConfig::from_toml_str(&DEFAULT_TIERS_TOML.replace("unmapped = \"dead\"", "unmapped = \"grant\""))
        .unwrap_err();
    assert!(e.to_string().contains("expected `dead` or `free`") && e.line.is_some(), "{e}");
}

proptest::proptest! {
    /// Whatever unmapped extras a subscription carries, wherever they sit among its items,
    /// access is what its mapped prices alone grant.
    #[test]
    fn unmapped_extras_never_change_access(
        mapped in proptest::collection::vec(0usize..6, 1..4),
        extras in proptest::collection::vec(("[a-z_]{1,12}", proptest::option::of("[a-z_-]{1,12}")), 0..4),
        seed in 0u64..1000,
    ) {
        let cfg = TierConfig::default_config();
        let keys = ["basic_monthly", "basic_yearly", "pro_monthly", "pro_yearly", "agent_monthly", "agent_yearly"];
        let plan: Vec<PriceRef> = mapped.iter().map(|&i| p(&format!("price_{i}"), Some(keys[i]))).collect();
        let expected = cfg.tier_for_prices(&plan).unwrap();
        let mut items = plan.clone();
        for (n, (id, key)) in extras.iter().enumerate() {
            let key = key.as_deref().filter(|k| !keys.contains(k));
            let at = (seed as usize + n * 7) % (items.len() + 1);
            items.insert(at, p(&format!("price_extra_{id}"), key));
        }
        let decided = cfg.plan_for_prices(&items).unwrap();
        proptest::prop_assert_eq!(decided.tier, expected);
        proptest::prop_assert_eq!(decided.ignored.len(), extras.len());
    }
}

const ADDONS: &str = r#"
[addons.extra_clients]
agent.clients = 10
[addons.foreign]
sources.foreign_property = true
sources.max = 1
[[prices]]
lookup_key = "extra_clients_10"
addon = "extra_clients"
[[prices]]
id = "price_foreign"
addon = "foreign"
"#;

#[test]
fn add_ons_stack_on_the_tier_times_their_quantity() {
    let cfg = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{ADDONS}")).unwrap();
    let plan = p("price_agent", Some("agent_yearly"));
    let clients = p("price_ec", Some("extra_clients_10")).with_quantity(3);
    let decided = cfg.plan_for_prices(&[clients.clone(), plan]).unwrap();
    assert_eq!(decided.tier.as_str(), "agent", "an add-on is not a tier");
    assert_eq!(decided.addons.agent.clients, 30);
    let agent = cfg.features(&decided.tier).unwrap().plus(&decided.addons, 1);
    assert_eq!(agent.agent.clients, 530);
    // On a basic plan the add-on grants a flag and one more source; quantity 0 grants nothing.
    let basic = p("price_basic", Some("basic_monthly"));
    let decided = cfg.plan_for_prices(&[basic.clone(), p("price_foreign", None)]).unwrap();
    let features = cfg.features(&decided.tier).unwrap().plus(&decided.addons, 1);
    assert!(features.sources.foreign_property);
    assert_eq!(features.sources.max, SourceLimit::Limited(2));
    let none = cfg.plan_for_prices(&[basic, p("price_foreign", None).with_quantity(0)]).unwrap();
    assert_eq!(none.addons, Features::none());
    // An add-on alone pays for no tier: free, plus the add-on.
    let alone = cfg.plan_for_prices(&[clients]).unwrap();
    assert_eq!((alone.tier, alone.addons.agent.clients), (TierName::free(), 30));
}

#[test]
fn plus_grants_flags_adds_numbers_and_keeps_unlimited() {
    let mut base = Features::none();
    base.sources.max = SourceLimit::Unlimited;
    let mut extra = Features::none();
    extra.sources.max = SourceLimit::Limited(5);
    extra.vat.returns = true;
    extra.agent.clients = u32::MAX;
    let sum = base.plus(&extra, 2);
    assert_eq!(sum.sources.max, SourceLimit::Unlimited);
    assert!(sum.vat.returns);
    assert_eq!(sum.agent.clients, u32::MAX, "saturates");
    assert_eq!(Features::none().plus(&extra, 0), Features::none());
}

#[test]
fn a_price_maps_to_a_tier_or_an_add_on_that_exists() {
    let both = "[[prices]]\nlookup_key = \"x\"\ntier = \"pro\"\naddon = \"a\"\n";
    let e =
        TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}[addons.a]\nvat.returns = true\n{both}")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::TierOrAddon) && e.line.is_some(), "{e}");
    let neither = "[[prices]]\nlookup_key = \"x\"\n";
    let e = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{neither}")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::TierOrAddon), "{e}");
    let unknown = "[[prices]]\nlookup_key = \"x\"\naddon = \"nope\"\n";
    let e = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{unknown}")).unwrap_err();
    assert!(e.to_string().contains("unknown add-on \"nope\""), "{e}");
    let typo = "[addons.a]\nagent.client = 1\n";
    assert!(TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{typo}")).is_err(), "unknown feature keys");
}

#[test]
fn near_misses_stay_unmapped_but_suggest_the_closest_key() {
    let cfg = TierConfig::default_config();
    for near in ["pro-monthly", "PRO_MONTHLY", " pro_monthly"] {
        assert!(cfg.tier_for_price(&p("price_x", Some(near))).is_err(), "{near:?} must not be fuzzy-matched");
        assert_eq!(cfg.closest_lookup_key(near), Some("pro_monthly"), "{near:?}");
    }
    assert_eq!(cfg.closest_lookup_key("extra_client"), None, "nothing close enough");
}

#[test]
fn several_items_pick_the_highest_rank_in_any_order() {
    let cfg = TierConfig::default_config();
    let a = p("p1", Some("basic_monthly"));
    let b = p("p2", Some("agent_monthly"));
    let c = p("p3", Some("pro_yearly"));
    for items in
        [vec![a.clone(), b.clone(), c.clone()], vec![c.clone(), b.clone(), a.clone()], vec![b.clone(), a.clone()]]
    {
        assert_eq!(cfg.tier_for_prices(&items).unwrap().as_str(), "agent");
    }
    assert_eq!(cfg.tier_for_prices(&[a, c]).unwrap().as_str(), "pro");
    assert_eq!(cfg.tier_for_prices(&[]).unwrap(), TierName::free());
}

#[test]
fn unknown_tier_is_rejected_with_line() {
    let e = with_prices("[[prices]]\nlookup_key = \"x\"\ntier = \"gold\"\n").unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::UnknownTier(ref t) if t == "gold"));
    let expected_line = MINIMAL.lines().count() + 3;
    assert_eq!(e.line, Some(expected_line));
    assert!(e.to_string().starts_with(&format!("<string>:{expected_line}:")), "{e}");
}

#[test]
fn duplicate_mappings_are_rejected() {
    let e = with_prices(
        "[[prices]]\nlookup_key = \"x\"\ntier = \"pro\"\n[[prices]]\nlookup_key = \"x\"\ntier = \"free\"\n",
    )
    .unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::DuplicatePrice { what: "lookup_key", .. }));
    let e = with_prices("[[prices]]\nid = \"price_1\"\ntier = \"pro\"\n[[prices]]\nid = \"price_1\"\ntier = \"pro\"\n")
        .unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::DuplicatePrice { what: "id", .. }));
    // The same string as a lookup_key and as an id is not a duplicate.
    with_prices("[[prices]]\nid = \"same\"\ntier = \"pro\"\n[[prices]]\nlookup_key = \"same\"\ntier = \"pro\"\n")
        .unwrap();
}

#[test]
fn empty_price_entry_is_rejected() {
    let e = with_prices("[[prices]]\ntier = \"pro\"\n").unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::EmptyPrice));
}

#[test]
fn free_must_exist() {
    let e = TierConfig::from_toml_str(
        "order = [\"pro\"]\n[tiers.pro]\nrecords = true\nexport = true\nobligations.view = true\n",
    )
    .unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::MissingFree));
}

#[test]
fn every_tier_must_keep_read_and_export() {
    for missing in ["records", "export", "obligations.view"] {
        let pro = ["records", "export", "obligations.view"]
            .iter()
            .filter(|k| **k != missing)
            .map(|k| format!("{k} = true\n"))
            .collect::<String>();
        let text = format!(
            "order = [\"free\", \"pro\"]\n[tiers.free]\nrecords = true\nexport = true\nobligations.view = true\n[tiers.pro]\n{pro}"
        );
        let e = TierConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::ReadExportRemoved(ref t) if t == "pro"), "{e}");
        assert!(e.line.is_some());
    }
}

#[test]
fn order_must_match_tiers() {
    let e = TierConfig::from_toml_str(&MINIMAL.replace("[\"free\", \"pro\"]", "[\"free\"]")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::OrderMismatch(ref t) if t == "pro"));
    let e =
        TierConfig::from_toml_str(&MINIMAL.replace("[\"free\", \"pro\"]", "[\"free\", \"pro\", \"pro\"]")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::OrderMismatch(_)));
    assert_eq!(e.line, Some(2));
}

#[test]
fn syntax_and_unknown_keys_report_lines() {
    let e = TierConfig::from_toml_str(&format!("{MINIMAL}vat.retruns = true\n")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::Parse(_)));
    assert!(e.line.is_some(), "{e}");
    let e = TierConfig::from_toml_str("order = [\n").unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::Parse(_)));
    let e = TierConfig::from_toml_str(&MINIMAL.replace("vat.returns = true", "sources.max = \"lots\"")).unwrap_err();
    assert!(e.to_string().contains("unlimited"), "{e}");
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("subsync-domain-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiers.toml");
    std::fs::write(&path, format!("{MINIMAL}[[prices]]\nid = \"p\"\ntier = \"nope\"\n")).unwrap();
    let e = TierConfig::load(&path).unwrap_err();
    assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");
    assert!(e.line.is_some());
    let e = TierConfig::load(dir.join("missing.toml")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::Io(_)));
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(TierConfig::load(&path).unwrap().tiers().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn source_limit_round_trips() {
    assert!(SourceLimit::Limited(1).allows(1) && !SourceLimit::Limited(1).allows(2));
    assert!(SourceLimit::Unlimited.allows(u32::MAX));
    let json = serde_json::to_string(&[SourceLimit::Limited(3), SourceLimit::Unlimited]).unwrap();
    assert_eq!(json, "[3,\"unlimited\"]");
    let back: Vec<SourceLimit> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, [SourceLimit::Limited(3), SourceLimit::Unlimited]);
}

const STRIPE_FEATURES: &str = r#"
[stripe_features.itsa_quarterly]
itsa.quarterly = true
[stripe_features.extra_sources]
sources.max = 2
"#;

#[test]
fn stripe_features_map_lookup_keys_to_grants_and_source_decides_whether_prices_matter() {
    let text = |source: &str| {
        format!(
            "{}{STRIPE_FEATURES}",
            DEFAULT_TIERS_TOML.replace("source = \"prices\"", &format!("source = \"{source}\""))
        )
    };
    let cfg = TierConfig::from_toml_str(&text("stripe_entitlements")).unwrap();
    assert_eq!(cfg.feature_source(), FeatureSource::StripeEntitlements);
    let grants = cfg.stripe_grants(["itsa_quarterly", "extra_sources", "not_mapped"]);
    assert!(grants.itsa.quarterly);
    assert_eq!(grants.sources.max, SourceLimit::Limited(2));
    assert_eq!(cfg.unmapped_stripe_features(&["itsa_quarterly".into(), "nope".into()]), vec!["nope"]);
    // Prices decide nothing under Stripe's Entitlements: an unmapped price is no error.
    let plan = cfg.plan_for_prices(&[p("price_q", Some("whatever"))]).unwrap();
    assert_eq!((plan.tier, plan.ignored.len()), (TierName::free(), 0));
    let both = TierConfig::from_toml_str(&text("both")).unwrap();
    assert!(both.feature_source().uses_prices() && both.feature_source().uses_stripe_entitlements());
    assert_eq!(both.plan_for_prices(&[p("price_a", Some("agent_yearly"))]).unwrap().tier.as_str(), "agent");
    assert_eq!(TierConfig::default_config().feature_source(), FeatureSource::Prices);
    let e = TierConfig::from_toml_str(&text("entitlements")).unwrap_err();
    assert!(e.to_string().contains("stripe_entitlements"), "{e}");
    let typo = format!("{}[stripe_features.x]\nitsa.quarterl = true\n", DEFAULT_TIERS_TOML);
    assert!(TierConfig::from_toml_str(&typo).is_err(), "unknown feature keys are refused");
}

#[test]
fn the_newest_feature_summary_wins_whatever_the_order() {
    let summary = |created, id: &str| crate::FeatureSummary {
        customer_id: "cus_1".into(),
        lookup_keys: vec![],
        event_created: created,
        event_id: id.into(),
    };
    assert!(summary(10, "evt_a").supersedes(9, "evt_z"), "a later second");
    assert!(summary(10, "evt_b").supersedes(10, "evt_a"), "same second: the greater id");
    assert!(!summary(10, "evt_a").supersedes(10, "evt_a"), "itself");
    assert!(!summary(9, "evt_z").supersedes(10, "evt_a"));
}
