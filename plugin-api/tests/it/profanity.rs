//! The profanity filter, loaded by path with the shipped word lists.

use chime_plugin_api::host::{
    ContentFilterPlugin, HostConfig, LoadedPlugin, PluginError, PluginHost,
};
use chime_plugin_api::{ContentKind, Direction, FilterOutcome};

use crate::support::{plugin_path, wordlist};

fn load(extra: serde_json::Value) -> ContentFilterPlugin {
    let mut config = serde_json::json!({
        "word_lists": [wordlist("en.txt"), wordlist("zh.txt")],
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            config.insert(key.clone(), value.clone());
        }
    }
    let host = PluginHost::new(HostConfig::default());
    match host
        .load(plugin_path("chime_profanity_filter"), &config.to_string())
        .unwrap()
    {
        LoadedPlugin::ContentFilter(filter) => filter,
        other => panic!("expected a content filter, got {other:?}"),
    }
}

async fn outgoing(filter: &ContentFilterPlugin, text: &str) -> FilterOutcome {
    filter
        .filter(text, Direction::Outgoing, ContentKind::Text)
        .await
        .unwrap()
}

fn replaced(text: &str) -> FilterOutcome {
    FilterOutcome::Replaced(text.to_owned())
}

#[tokio::test]
async fn english_terms_are_starred() {
    let filter = load(serde_json::json!({}));
    assert_eq!(
        outgoing(&filter, "well damn, that is crap").await,
        replaced("well ****, that is ****")
    );
    assert_eq!(
        outgoing(&filter, "what a lovely day").await,
        FilterOutcome::Pass
    );
}

#[tokio::test]
async fn chinese_terms_match_without_word_boundaries() {
    let filter = load(serde_json::json!({}));
    assert_eq!(
        outgoing(&filter, "你这个笨蛋！").await,
        replaced("你这个**！")
    );
    assert_eq!(
        outgoing(&filter, "他是王八蛋和傻瓜").await,
        replaced("他是***和**")
    );
    assert_eq!(outgoing(&filter, "笨 蛋").await, replaced("***"));
    assert_eq!(outgoing(&filter, "今天天气很好").await, FilterOutcome::Pass);
}

#[tokio::test]
async fn evasion_attempts_are_caught_and_starred_in_place() {
    let filter = load(serde_json::json!({}));
    assert_eq!(outgoing(&filter, "FuCk this").await, replaced("**** this"));
    assert_eq!(
        outgoing(&filter, "ｆｕｃｋ this").await,
        replaced("**** this")
    );
    assert_eq!(
        outgoing(&filter, "oh f.u.c.k.").await,
        replaced("oh *******.")
    );
    assert_eq!(
        outgoing(&filter, "f u c k you").await,
        replaced("******* you")
    );
    assert_eq!(outgoing(&filter, "s_h-i_t").await, replaced("*******"));
    assert_eq!(
        outgoing(&filter, "f\u{200B}u\u{200B}c\u{200B}k!").await,
        replaced("*******!")
    );
    assert_eq!(outgoing(&filter, "ＳＨＩＴ").await, replaced("****"));
}

#[tokio::test]
async fn whole_words_only_for_spaced_scripts() {
    let filter = load(serde_json::json!({}));
    for clean in [
        "a classic class",
        "pass the assessment",
        "shitake mushrooms? no: shiitake",
        "Scunthorpe",
    ] {
        assert_eq!(
            outgoing(&filter, clean).await,
            FilterOutcome::Pass,
            "{clean}"
        );
    }
    assert_eq!(
        outgoing(&filter, "you asshole").await,
        replaced("you *******")
    );
    assert_eq!(outgoing(&filter, "bullshit!").await, replaced("********!"));
}

#[tokio::test]
async fn block_action_blocks_outgoing_text() {
    let filter = load(serde_json::json!({"action": "block"}));
    assert_eq!(
        outgoing(&filter, "you 混蛋 and you idiot").await,
        FilterOutcome::Blocked {
            reason: "content blocked by the profanity filter (2 match(es))".to_owned()
        }
    );
    assert_eq!(outgoing(&filter, "hello there").await, FilterOutcome::Pass);
}

#[tokio::test]
async fn incoming_text_passes_unless_enabled_and_is_then_replaced_even_in_block_mode() {
    let off = load(serde_json::json!({}));
    assert_eq!(
        off.filter("damn", Direction::Incoming, ContentKind::Text)
            .await
            .unwrap(),
        FilterOutcome::Pass
    );
    let on = load(serde_json::json!({"filter_incoming": true, "action": "block"}));
    assert_eq!(
        on.filter("damn it", Direction::Incoming, ContentKind::Text)
            .await
            .unwrap(),
        replaced("**** it")
    );
}

#[tokio::test]
async fn custom_description_is_filtered_only_when_configured() {
    let off = load(serde_json::json!({}));
    assert_eq!(
        off.filter("crap", Direction::Outgoing, ContentKind::CustomDescription)
            .await
            .unwrap(),
        FilterOutcome::Pass
    );
    let on = load(serde_json::json!({"filter_custom_description": true, "replacement": "#"}));
    assert_eq!(
        on.filter(
            "crap gift",
            Direction::Outgoing,
            ContentKind::CustomDescription
        )
        .await
        .unwrap(),
        replaced("#### gift")
    );
}

#[tokio::test]
async fn a_multi_character_replacement_replaces_each_match_once() {
    let filter = load(serde_json::json!({"replacement": "[censored]", "words": ["heck"]}));
    assert_eq!(
        outgoing(&filter, "heck, damn").await,
        replaced("[censored], [censored]")
    );
}

#[test]
fn a_missing_word_list_fails_init_naming_the_file() {
    let host = PluginHost::new(HostConfig::default());
    let config = serde_json::json!({"word_lists": ["/nonexistent/words.txt"]}).to_string();
    let error = host
        .load(plugin_path("chime_profanity_filter"), &config)
        .unwrap_err();
    match error {
        PluginError::InitFailed { name, message, .. } => {
            assert_eq!(name, "profanity-filter");
            assert!(
                message.starts_with("cannot read word list /nonexistent/words.txt"),
                "{message}"
            );
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
}

#[test]
fn an_unknown_config_field_fails_init() {
    let host = PluginHost::new(HostConfig::default());
    let error = host
        .load(
            plugin_path("chime_profanity_filter"),
            r#"{"wordlists": []}"#,
        )
        .unwrap_err();
    match error {
        PluginError::InitFailed { message, .. } => {
            assert!(message.contains("unknown field `wordlists`"), "{message}")
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
}
