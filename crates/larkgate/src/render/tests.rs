//! Tests of the render pipeline as a whole, and property tests of splitting.

use proptest::prelude::*;

use super::blocks::{self, escaped_len, Kind};
use super::*;

fn members() -> MentionMap {
    [("Alice", "ou_alice"), ("Bob", "ou_bob")]
        .into_iter()
        .collect()
}

/// Whether every fence opened in `part` is closed in it.
fn fences_balanced(part: &str) -> bool {
    let lines = blocks::lines(part);
    blocks::blocks(&lines)
        .iter()
        .all(|b| !matches!(b.kind, Kind::Code { closed: false, .. }))
}

/// Text with whitespace and fence lines removed: what must survive splitting.
fn essence(text: &str) -> String {
    text.split('\n')
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("```") || t.starts_with("~~~"))
        })
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

/// Whether `needle`'s characters appear in `hay` in order.
fn is_subsequence(needle: &str, hay: &str) -> bool {
    let mut hay = hay.chars();
    needle.chars().all(|c| hay.any(|h| h == c))
}

#[test]
fn plain_replies_are_text() {
    let r = render("Hello @Alice, all good.", Target::Card, &members());
    assert_eq!(r.target, Target::Text);
    assert_eq!(
        r.parts,
        vec!["Hello <at user_id=\"ou_alice\">Alice</at>, all good."]
    );
    assert_eq!(r.contents(), vec![serde_json::json!({"text": r.parts[0]})]);
    assert!(render("  ", Target::Card, &members()).parts.is_empty());
}

#[test]
fn formatted_replies_take_the_preferred_rich_target() {
    let md = "# Plan\r\n\r\n- ask @Bob\r\n- ship";
    let card = render(md, Target::Card, &members());
    assert_eq!(card.target, Target::Card);
    assert_eq!(
        card.parts,
        vec!["#### Plan\n\n- ask <at id=ou_bob></at>\n- ship"]
    );
    assert_eq!(card.summaries, vec!["Plan ask @Bob ship"]);
    assert_eq!(
        card.contents()[0]["config"]["summary"]["content"],
        "Plan ask @Bob ship"
    );
    let post = render(md, Target::Text, &members());
    assert_eq!(post.target, Target::Post);
    assert_eq!(
        post.parts,
        vec!["#### Plan\n\n- ask <at user_id=\"ou_bob\">Bob</at>\n- ship"]
    );
}

#[test]
fn post_content_puts_code_blocks_in_their_own_paragraphs() {
    let r = render_as(
        "Intro\n\n```sh\nls\n```\nAfter",
        Target::Post,
        &MentionMap::new(),
    );
    assert_eq!(
        r.contents(),
        vec![serde_json::json!({"zh_cn": {"title": "", "content": [
            [{"tag": "md", "text": "Intro"}],
            [{"tag": "md", "text": "```sh\nls\n```"}],
            [{"tag": "md", "text": "After"}],
        ]}})]
    );
}

#[test]
fn card_content_has_a_markdown_free_summary() {
    let content = Target::Card.content("**Done**: see `x`");
    assert_eq!(content["config"]["summary"]["content"], "Done: see x");
    assert_eq!(
        content["body"]["elements"][0]["content"],
        "**Done**: see `x`"
    );
    assert_eq!(Target::Card.msg_type(), "interactive");
    assert_eq!(Target::Post.msg_type(), "post");
    assert_eq!(Target::Text.msg_type(), "text");
}

#[test]
fn tables_are_limited_per_card_and_absent_from_posts() {
    let table = "| k | v |\n|---|---|\n| a | 1 |";
    let md = [table; 5].join("\n\n");
    let card = render_as(&md, Target::Card, &MentionMap::new());
    assert_eq!(card.parts.len(), 1);
    assert_eq!(count_tables(&card.parts[0]), 3);
    assert_eq!(card.parts[0].matches("```").count(), 4);
    let post = render_as(&md, Target::Post, &MentionMap::new());
    assert_eq!(count_tables(&post.parts[0]), 0);
    assert_eq!(
        prepare(&md, Target::Card, &MentionMap::new()),
        card.parts[0]
    );
}

fn big_reply() -> String {
    let mut md = String::from(
        "# Report\n\nSummary paragraph with **bold** and a [link](https://example.com).\n\n",
    );
    for section in 0..5 {
        md.push_str(&format!("## Section {section}\n\n"));
        for p in 0..10 {
            md.push_str(&format!(
                "Paragraph {section}.{p}: {}\n\n",
                "lorem ipsum dolor sit amet 汉字 ".repeat(12)
            ));
        }
        md.push_str("```rust\n");
        for line in 0..80 {
            md.push_str(&format!(
                "    let value_{section}_{line} = compute(\"{line}\"); // step\n"
            ));
        }
        md.push_str("```\n\n");
        md.push_str("| name | qty | note |\n|---|---:|---|\n");
        for row in 0..8 {
            md.push_str(&format!("| item {row} | {row} | ok |\n"));
        }
        md.push_str("\n- point one\n- point two\n\n");
    }
    md
}

#[test]
fn a_40_kb_reply_splits_into_ordered_valid_parts() {
    let md = big_reply();
    assert!(md.len() > 40_000, "{}", md.len());
    assert_eq!(count_tables(&md), 5);
    for target in [Target::Card, Target::Post] {
        let r = render_as(&md, target, &MentionMap::new());
        assert!(r.parts.len() >= 2, "{target:?}: {} parts", r.parts.len());
        for (i, part) in r.parts.iter().enumerate() {
            let size = lark_wire::card::serialized_len(&target.content(part));
            assert!(
                size <= target.max_bytes() - RESERVED_BYTES,
                "{target:?} part {i}: {size}"
            );
            assert!(
                fences_balanced(part),
                "{target:?} part {i} has an open fence"
            );
            let max_tables = if target == Target::Card { 3 } else { 0 };
            assert!(count_tables(part) <= max_tables, "{target:?} part {i}");
        }
        let joined = r.parts.join("\n");
        // Degraded tables lose their markup (pipes, delimiter rows, `**`).
        let words = |t: &str| -> String {
            essence(t)
                .chars()
                .filter(|c| !matches!(c, '|' | '-' | ':' | '*' | '#' | '+'))
                .collect()
        };
        assert!(is_subsequence(&words(&md), &words(&joined)));
        // Sections come in order.
        let positions: Vec<usize> = (0..5)
            .map(|s| {
                joined
                    .find(&format!("##### Section {s}"))
                    .unwrap_or(usize::MAX)
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}

#[test]
fn part_uuids_are_stable_short_and_distinct() {
    let a = part_uuid("om_abc", 0);
    assert_eq!(a, part_uuid("om_abc", 0));
    assert_ne!(a, part_uuid("om_abc", 1));
    assert_ne!(a, part_uuid("om_abd", 0));
    assert!(part_uuid(&"x".repeat(500), usize::MAX).len() <= 50);
    assert_eq!(a.len(), 26);
    assert!(a.ends_with("-0"));
}

/// Markdown built from the constructs agents write, in any order and size.
fn markdown() -> impl Strategy<Value = String> {
    let word = "[a-zA-Z0-9汉字✓]{1,12}";
    let line = prop::collection::vec(word, 1..30).prop_map(|w| w.join(" "));
    let long_line = (1usize..4, "[a-z汉]{1,3}").prop_map(|(n, w)| w.repeat(n * 400));
    let para = prop::collection::vec(line.clone(), 1..5).prop_map(|l| l.join("\n"));
    let list = prop::collection::vec(line.clone(), 1..8).prop_map(|l| {
        l.iter()
            .map(|x| format!("- {x}"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let code = (
        prop::sample::select(vec!["", "rust", "py"]),
        prop::collection::vec(line.clone(), 0..80),
    )
        .prop_map(|(lang, l)| format!("```{lang}\n{}\n```", l.join("\n")));
    let open_code =
        prop::collection::vec(line.clone(), 0..10).prop_map(|l| format!("```\n{}", l.join("\n")));
    let table = prop::collection::vec(("[a-z]{1,8}", "[0-9]{1,5}"), 1..40).prop_map(|rows| {
        let body: Vec<String> = rows.iter().map(|(a, b)| format!("| {a} | {b} |")).collect();
        format!("| key | value |\n|---|---|\n{}", body.join("\n"))
    });
    let heading = line.prop_map(|l| format!("## {l}"));
    let block =
        prop_oneof![4 => para, 2 => list, 2 => code, 1 => table, 1 => heading, 1 => long_line];
    (
        prop::collection::vec(block, 0..25),
        prop::option::of(open_code),
        prop::sample::select(vec!["\n\n", "\n", "\n\n\n"]),
    )
        .prop_map(|(blocks, open, sep)| {
            let mut text = blocks.join(sep);
            if let Some(open) = open {
                text.push_str("\n\n");
                text.push_str(&open);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn split_parts_fit_are_balanced_and_lose_nothing(md in markdown(), max in 512usize..6000) {
        let pieces = split::pieces(&md, max);
        let mut pos = 0;
        for p in &pieces {
            let part = p.render(&md);
            prop_assert!(escaped_len(&part) <= max, "{} > {max}", escaped_len(&part));
            prop_assert!(fences_balanced(&part), "open fence in {part:?}");
            prop_assert!(p.start >= pos && p.start < p.end);
            prop_assert!(md[pos..p.start].trim().is_empty(), "lost {:?}", &md[pos..p.start]);
            pos = p.end;
        }
        prop_assert!(md[pos..].trim().is_empty(), "lost the tail");
        let parts = split_for_limit(&md, max);
        let joined = parts.join("\n");
        // Tables repeat their header in each part; everything else is exact.
        if count_tables(&md) == 0 {
            prop_assert_eq!(essence(&joined), essence(&md));
        } else {
            prop_assert!(is_subsequence(&essence(&md), &essence(&joined)));
        }
    }

    #[test]
    fn split_never_panics_on_arbitrary_text(md in "(?s).{0,3000}", max in 0usize..2000) {
        let max_eff = max.max(MIN_PART_BYTES);
        for part in split_for_limit(&md, max) {
            prop_assert!(escaped_len(&part) <= max_eff);
        }
        let _ = stream_safe(&md);
        let _ = summary(&md);
        let _ = has_formatting(&md);
        let _ = degrade_tables(&md, 1);
        for target in [Target::Card, Target::Post, Target::Text] {
            for part in render_as(&md, target, &members()).parts {
                prop_assert!(lark_wire::card::serialized_len(&target.content(&part)) <= target.max_bytes());
            }
        }
        let mut splitter = BlockSplitter::new();
        let mut blocks = splitter.push(&md);
        blocks.extend(splitter.finish());
        prop_assert_eq!(essence(&blocks.join("\n\n")), essence(&md));
    }

    #[test]
    fn rendered_parts_fit_their_message(md in markdown()) {
        for target in [Target::Card, Target::Post, Target::Text] {
            let r = render_as(&md, target, &members());
            for part in &r.parts {
                let size = lark_wire::card::serialized_len(&target.content(part));
                prop_assert!(size <= target.max_bytes() - RESERVED_BYTES);
                prop_assert!(fences_balanced(part));
                if target == Target::Card {
                    prop_assert!(count_tables(part) <= 3);
                }
                if target == Target::Post {
                    prop_assert_eq!(count_tables(part), 0);
                }
            }
        }
    }

    #[test]
    fn block_splitter_ignores_how_the_text_is_chunked(md in markdown(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20)) {
        let mut whole = BlockSplitter::new();
        let mut expected = whole.push(&md);
        expected.extend(whole.finish());

        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(md.len() + 1)).collect();
        bounds.push(0);
        bounds.push(md.len());
        bounds.sort_unstable();
        let mut chunked = BlockSplitter::new();
        let mut got = Vec::new();
        let mut prev = 0;
        for b in bounds {
            let b = (b..=md.len()).find(|&i| md.is_char_boundary(i)).unwrap_or(md.len());
            if b < prev { continue; }
            got.extend(chunked.push(&md[prev..b]));
            prev = b;
        }
        got.extend(chunked.finish());
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(essence(&got.join("\n\n")), essence(&md));
    }

    #[test]
    fn stream_safe_keeps_every_prefix_renderable(md in markdown(), cut in any::<prop::sample::Index>()) {
        let mut end = cut.index(md.len() + 1);
        while !md.is_char_boundary(end) { end -= 1; }
        let safe = stream_safe(&md[..end]);
        prop_assert!(fences_balanced(&safe), "{safe:?}");
    }
}

/// Found by `stream_safe_keeps_every_prefix_renderable`: an opening fence
/// after blank lines, as the last line, was taken for a half-typed closer
/// and dropped, so the appended closer opened a new fence.
#[test]
fn stream_safe_keeps_an_opener_after_blank_lines() {
    for text in ["\n\n```", "\n\n```\n", "```"] {
        let safe = stream_safe(text);
        assert!(fences_balanced(&safe), "{text:?} -> {safe:?}");
    }
    assert_eq!(stream_safe("```rust\nfn x\n``"), "```rust\nfn x\n```");
}

#[test]
fn streamed_cards_roll_over_with_mentions_counted() {
    let opts = lark_wire::card::CardOptions::default();
    let budget = stream_budget(&opts);
    assert!(budget > 25_000 && budget < lark_wire::card::CARD_MAX_BYTES);
    let line = "ping @Alice and @Bob ".repeat(4);
    let raw = format!("{line}\n\n").repeat(60);
    assert!(card_rollover(&raw, &members(), 100_000).is_none());
    let max = 4000;
    let roll = card_rollover(&raw, &members(), max).unwrap_or_else(|| panic!("rollover"));
    assert!(escaped_len(&roll.head) <= max);
    assert!(roll
        .head
        .starts_with("ping <at id=ou_alice></at> and <at id=ou_bob></at>"));
    assert_eq!(roll.tail_prefix, "");
    // The head holds fewer raw bytes than `max`: mention tags were counted.
    assert!(roll.tail_start < max);
    assert!(raw[roll.tail_start..].starts_with("ping @Alice"));
    // A fence cut at the rollover is reopened in the next card.
    let code = format!("```\n{}", "let x = 1;\n".repeat(800));
    let roll = card_rollover(&code, &members(), max).unwrap_or_else(|| panic!("rollover"));
    assert!(fences_balanced(&roll.head));
    assert_eq!(roll.tail_prefix, "```\n");
}
