//! `larkgate demo` in a real browser: the demo runs in this process (the
//! emulator, the gateway over the long connection, the chat page), and
//! `tests/browser/demo.mjs` drives headless Chromium through playwright-core:
//! a DM streamed to completion, an @mention in the group, Stop mid-stream,
//! the pairing flow approved from the page, a narrow window.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (run
//! `tools/browser-deps.sh`; `.ci/run` does). Set `LARKGATE_SKIP_BROWSER=1` to
//! skip on a machine without them. The screenshot goes to
//! `target/demo.png`, or to `LARKGATE_SCREENSHOT` (the README's
//! `docs/demo.png` is refreshed with that).

use std::path::PathBuf;

use larkgate::demo::{self, DemoOptions};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_works_in_a_browser() {
    if std::env::var("LARKGATE_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: LARKGATE_SKIP_BROWSER=1");
        return;
    }
    let root = workspace_root();
    let script = root.join("tests/browser/demo.mjs");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && root
                .join("tests/browser/node_modules/playwright-core")
                .exists(),
        "the browser test needs Chromium and playwright-core: run tools/browser-deps.sh \
         (or set LARKGATE_SKIP_BROWSER=1)"
    );
    let screenshot = std::env::var("LARKGATE_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/demo.png"));
    let demo = demo::start(DemoOptions::default())
        .await
        .expect("demo starts");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&demo.url)
        .arg(&screenshot)
        .current_dir(&root)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    demo.stop().await;
    assert!(
        out.status.success(),
        "demo.mjs failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(screenshot.exists());
}

/// The chat page's markdown renderer never turns hostile text into markup
/// (`node --test`, no browser needed).
#[test]
fn the_chat_page_escapes_what_it_renders() {
    let root = workspace_root();
    let out = std::process::Command::new("node")
        .arg("--test")
        .arg(root.join("tests/browser/markdown.test.mjs"))
        .current_dir(&root)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
