//! Keeps `docs/configuration.md` true: every key of the configuration types is
//! documented, every documented key exists, and the example loads.

use router::config::{
    AdminConfig, ArchiveConfig, CanarySpec, CompileCacheConfig, Config, CredentialConfig,
    DeadLetterSpec, DedupSpec, DirGrant, HttpGrant, IngestConfig, KvConfig, PluginConfig,
    PluginDefaults, QueueConfig, RateLimitConfig, ReloadConfig, RetrySpec, RouteConfig,
    SchemaConfig, ServerConfig, ShadowSpec, Source, TlsConfig,
};
use serde::de::{self, Deserializer, Visitor};
use std::cell::RefCell;

const REFERENCE: &str = "../docs/configuration.md";

/// A deserializer that only records the field names serde asks a struct for.
struct FieldNames<'a>(&'a RefCell<Vec<&'static str>>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.borrow_mut().extend(fields);
        Err(de::Error::custom("only the field names were wanted"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

fn fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    let names = RefCell::new(Vec::new());
    let _ = T::deserialize(FieldNames(&names));
    names.into_inner()
}

fn documented_keys(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        // Rows of other tables (transform steps) are examples, not keys.
        .filter(|k| !k.contains([' ', '{']))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_reference_matches_the_types() {
    let doc = std::fs::read_to_string(REFERENCE).expect("docs/configuration.md");
    let sections: Vec<(&str, Vec<&str>)> = vec![
        ("server", fields::<ServerConfig>()),
        ("server.tls", fields::<TlsConfig>()),
        ("admin", fields::<AdminConfig>()),
        ("reload", fields::<ReloadConfig>()),
        ("ingest", fields::<IngestConfig>()),
        ("ingest.rate_limit", fields::<RateLimitConfig>()),
        ("ingest.credential", fields::<CredentialConfig>()),
        ("plugin_defaults", fields::<PluginDefaults>()),
        ("delivery.retry", fields::<RetrySpec>()),
        ("delivery.dead_letter", fields::<DeadLetterSpec>()),
        ("delivery.dedup", fields::<DedupSpec>()),
        ("queue", fields::<QueueConfig>()),
        ("kv", fields::<KvConfig>()),
        ("compile_cache", fields::<CompileCacheConfig>()),
        ("archive", fields::<ArchiveConfig>()),
        ("plugin", fields::<PluginConfig>()),
        ("plugin.dirs", fields::<DirGrant>()),
        ("plugin.http", fields::<HttpGrant>()),
        ("plugin.shadow", fields::<ShadowSpec>()),
        ("plugin.canary", fields::<CanarySpec>()),
        ("route", fields::<RouteConfig>()),
        ("schema", fields::<SchemaConfig>()),
    ];
    let mut expected = Vec::new();
    for (section, names) in &sections {
        assert!(!names.is_empty(), "no fields found for {section}");
        expected.extend(names.iter().map(|f| format!("{section}.{f}")));
    }
    let documented = documented_keys(&doc);
    let missing: Vec<_> = expected
        .iter()
        .filter(|k| !documented.contains(k))
        .collect();
    let unknown: Vec<_> = documented
        .iter()
        .filter(|k| !expected.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from {REFERENCE}: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "{REFERENCE} documents keys that do not exist: {unknown:?}"
    );
}

#[test]
fn the_reference_example_is_a_valid_configuration() {
    let doc = std::fs::read_to_string(REFERENCE).expect("docs/configuration.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an example");
    let config = Config::parse(Source::new(REFERENCE, example.to_owned()), |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.ingest.credential.len(), 2);
}

/// The hardened example of `docs/security.md` is a valid configuration with the
/// settings it names (and its secrets from the environment).
#[test]
fn the_hardened_example_is_a_valid_configuration() {
    let path = "../docs/security.md";
    let doc = std::fs::read_to_string(path).expect("docs/security.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an example");
    let env = |name: &str| match name {
        "ROUTER_ADMIN_TOKEN" => Some("0123456789abcdef0123".to_owned()),
        "PARTNER_WEBHOOK_SECRET" => Some("whsec_c2VjcmV0LXNlY3JldA==".to_owned()),
        "SHOP_TOKEN" => Some("shop-token".to_owned()),
        _ => None,
    };
    let config =
        Config::parse(Source::new(path, example.to_owned()), env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.ingest.credential.len(), 2);
    assert!(config.admin.token.is_some());
    assert!(config.server.tls.is_some());
}
