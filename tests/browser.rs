//! The explorer UI in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` + `chromium-driver`, which `.ci/run` installs), against a real `spored run` on
//! 127.0.0.1. Screenshots land in `target/tmp/browser/`.
//!
//! Without a chromedriver on the PATH the test says so and passes, unless
//! `SPORED_BROWSER_TEST=required` (set by `.ci/run`), where it fails.

use std::path::Path;

use serde_json::{json, Value as J};
use spore_actors::verifier::sign_event;
use spore_spec::json::Value;
use spore_spec::wire::Message;
use spore_spec::{Identity, NodeProfile, Signed as _, Status};
use support::browser::{on_path, Browser};
use support::{signed_record as record, signed_task, spored};

mod support;

/// A stored-XSS attempt: markup and a script in attacker-chosen strings.
const PAYLOAD: &str =
    "<img src=x onerror=\"window.__xss=(window.__xss||0)+1\">\"><script>window.__xss=1</script>";

/// Chromedriver, or `None` when there is none and the test may skip (it says so); with
/// `SPORED_BROWSER_TEST=required` (CI) a missing one fails the test.
fn chromedriver() -> Option<std::path::PathBuf> {
    let found = on_path("chromedriver");
    if found.is_none() {
        let required = std::env::var("SPORED_BROWSER_TEST").as_deref() == Ok("required");
        assert!(
            !required,
            "SPORED_BROWSER_TEST=required but no chromedriver on PATH \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no chromedriver on PATH (apt-get install chromium chromium-driver)");
    }
    found
}

/// `spored import FILE` into the node running on `dir`, which must accept it.
fn import(dir: &Path, file: &Path) {
    let out = spored(dir).arg("import").arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Page-side helpers for the DAG's canvas: `shown()` lists the ids laid out (sorted);
/// `px(id, dx)` is the colour drawn `dx` px right of record `id`'s centre, `[r, g, b, a]`, or
/// null when it is not drawn; `near(px, status)` says whether a colour is the one the DAG
/// draws records of `status` (0 keep, 1 discard, 2 crash) or, for 3, the frontier, opaque
/// (a dimmed record is drawn at a quarter of full opacity).
const DAG_JS: &str = "
    const shown = () => dag.layout ? dag.layout.layers.flatMap(l => [...l].map(i => dag.rows[i][0])).sort() : [];
    const px = (id, dx) => {
        const p = dagPoint(id); if (!p) return null;
        const c = document.querySelector('#dag'), b = c.getBoundingClientRect(), d = devicePixelRatio;
        return [...c.getContext('2d').getImageData(Math.round((p.x + dx - b.left - c.clientLeft) * d), Math.round((p.y - b.top - c.clientTop) * d), 1, 1).data];
    };
    const near = (color, status) => {
        if (!color || !dag.colors) return false;
        const w = status === 3 ? dag.colors.frontierWord : dag.colors.word[status];
        const want = [w & 255, (w >>> 8) & 255, (w >>> 16) & 255];
        return color[3] >= 200 && Math.abs(color[0] - want[0]) + Math.abs(color[1] - want[1]) + Math.abs(color[2] - want[2]) < 60;
    };
    const ringAt = (id) => { const r = Math.min(6, Math.max(3, 6 * state.view.k)); return [r + 3, r + 4, r + 5].some(dx => near(px(id, dx), 3)); };
";

fn write_jsonl(path: &Path, messages: Vec<Message>) {
    let lines: Vec<String> = messages.iter().map(Message::encode_body).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn the_explorer_ui_shows_the_dag_frontier_and_details_updates_live_and_runs_no_injected_script() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // a task, a small graph, and a profile, with the payload in a description and a name
    let who = Identity::from_seed([42; 32]);
    let task = signed_task(&who, "browser-task", PAYLOAD);
    let t = task.task_id.clone();
    let root = record(&who, &t, None, Status::Keep, 2.0, "baseline", 1_767_225_700);
    let hostile = record(
        &who,
        &t,
        Some(&root),
        Status::Keep,
        1.9,
        PAYLOAD,
        1_767_225_800,
    );
    let worse = record(
        &who,
        &t,
        Some(&root),
        Status::Discard,
        2.1,
        "worse",
        1_767_225_900,
    );
    let crash = record(
        &who,
        &t,
        Some(&hostile),
        Status::Crash,
        0.0,
        "oom",
        1_767_226_000,
    );
    let mut profile = NodeProfile {
        node_id: who.node_id(),
        display_name: PAYLOAD.into(),
        bio: PAYLOAD.into(),
        timestamp: 1_767_225_650,
        schema_version: 1,
        ..NodeProfile::default()
    };
    profile.sign_with(&who);
    let seed = dir.path().join("seed.jsonl");
    write_jsonl(
        &seed,
        vec![
            Message::Task(task.clone()),
            Message::Experiment(root.clone()),
            Message::Experiment(hostile.clone()),
            Message::Experiment(worse.clone()),
            Message::Experiment(crash.clone()),
            Message::Profile(profile),
        ],
    );

    // a real node on loopback, and a page open on it before it holds anything: each view
    // says why it is empty
    let node = support::start(dir.path(), &[]);
    let web = node.web.clone();
    let browser = Browser::start(&driver);
    browser.goto(&web);
    browser.wait_for(
        "the empty DAG's explanation",
        "return document.querySelector('#dag-info').textContent.startsWith('no records yet: ')",
    );
    for (tab, says) in [
        ("frontier", "No frontier yet"),
        ("tasks", "No tasks yet"),
        ("activity", "Nothing has happened"),
        ("progress", "no records yet"),
    ] {
        browser.click(&format!("#tabs button[data-tab={tab}]"));
        browser.wait_for(
            &format!("the empty {tab} view"),
            &format!("return document.querySelector('#tab-{tab}').textContent.includes('{says}')"),
        );
    }
    browser.click("#tabs button[data-tab=dag]");
    // then the records arrive (live: the page is not reloaded)
    import(dir.path(), &seed);

    // the DAG: the two keeps drawn, the discard and crash leaves collapsed into counts, the
    // frontier ring on the better keep
    let mut keeps = vec![root.id.clone(), hostile.id.clone()];
    keeps.sort();
    browser.wait_for(
        "the DAG",
        &format!(
            "{DAG_JS} return JSON.stringify(shown()) === '{}' && near(px('{}', 0), 0) && near(px('{}', 0), 0)",
            J::from(keeps.clone()),
            root.id,
            hostile.id
        ),
    );
    assert_eq!(
        browser.js(&format!(
            "{DAG_JS} return [ringAt('{}'), ringAt('{}')]",
            hostile.id, root.id
        )),
        json!([true, false]),
        "the frontier ring is drawn around the frontier record alone"
    );
    assert!(browser
        .js("return document.querySelector('#dag-info').textContent")
        .as_str()
        .unwrap()
        .contains("2 discard/crash leaves folded"));
    browser.screenshot("1-dag");

    // the frontier table lists it
    browser.click("#tabs button[data-tab=frontier]");
    browser.wait_for(
        "the frontier table",
        &format!(
            "return document.querySelector('#frontier tbody').textContent.includes('{}')",
            &hostile.id[..8]
        ),
    );
    browser.screenshot("2-frontier");

    // a click on a count shows the leaves folded into it, and "fold" folds them again; a click
    // on a record opens it, and its path to the root is highlighted (the rest dimmed)
    browser.click("#tabs button[data-tab=dag]");
    let drawn = |leaf: &spore_spec::ExperimentRecord| {
        format!(
            "{DAG_JS} return near(px('{}', 0), {})",
            leaf.id, leaf.status as u8
        )
    };
    browser.click_dag_count(&hostile.id);
    browser.wait_for("the folded leaf drawn", &drawn(&crash));
    browser.wait_for("'fold 1' drawn", "return (dag.boxes || []).length === 2");
    browser.click_dag_count(&hostile.id);
    browser.wait_for(
        "the leaf folded again",
        &format!("return !dagPoint('{}')", crash.id),
    );
    for (parent, leaf) in [(&hostile, &crash), (&root, &worse)] {
        browser.click_dag_count(&parent.id);
        browser.wait_for("the folded leaf drawn", &drawn(leaf));
    }
    browser.click_dag_record(&crash.id);
    browser.wait_for(
        "the detail panel",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{}'",
            crash.id
        ),
    );
    browser.wait_for(
        "the ancestor path highlighted, the rest dimmed",
        &format!(
            "{DAG_JS} return near(px('{}', 0), 0) && near(px('{}', 0), 0) && near(px('{}', 0), 2) && px('{}', 0)[3] > 0 && px('{}', 0)[3] < 128",
            root.id, hostile.id, crash.id, worse.id, worse.id
        ),
    );
    browser.screenshot("3-detail");

    // the payload's record and its publisher: shown as text, never run
    browser.click_dag_record(&hostile.id);
    browser.wait_for(
        "the hostile record's detail",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{}'",
            hostile.id
        ),
    );
    let shown = browser.js("return document.querySelector('#detail').textContent");
    assert!(
        shown.as_str().unwrap().contains(PAYLOAD),
        "the description is shown as written: {shown}"
    );
    browser.click("#detail a.link");
    browser.wait_for(
        "the node page",
        "const h = document.querySelector('#detail-node'); return !!h",
    );
    assert_eq!(
        browser.js("return document.querySelector('#detail-node').textContent"),
        J::String(PAYLOAD.into()),
        "the profile name is shown as written"
    );
    browser.screenshot("4-node");
    assert_eq!(
        browser.js(
            "return [typeof window.__xss, document.querySelectorAll('#detail img, #detail script, \
             #frontier img, #activity img').length]"
        ),
        json!(["undefined", 0]),
        "no injected element exists and no injected script ran"
    );

    // a record published while the page is open appears without a reload
    browser.js("window.__marker = 'same page'; return null");
    let live = record(
        &who,
        &t,
        Some(&hostile),
        Status::Keep,
        1.8,
        "arrived live",
        1_767_226_100,
    );
    let more = dir.path().join("live.jsonl");
    write_jsonl(&more, vec![Message::Experiment(live.clone())]);
    import(dir.path(), &more);
    browser.wait_for(
        "the live record in the DAG",
        &format!("return !!dagPoint('{}')", live.id),
    );
    browser.click("#tabs button[data-tab=activity]");
    browser.wait_for(
        "the live record in the activity feed",
        &format!(
            "return !!document.querySelector('#activity li[data-id=\"{}\"]')",
            live.id
        ),
    );
    assert_eq!(
        browser.js("return window.__marker"),
        J::String("same page".into()),
        "updated in place, not reloaded"
    );
    let shot = browser.screenshot("5-live");
    assert!(std::fs::metadata(shot).unwrap().len() > 10_000);
    assert_eq!(
        browser.js("return typeof window.__xss"),
        J::String("undefined".into())
    );

    // a verdict change reaches the open page: other nodes of the class re-run the live record,
    // find 1.95 instead of its claimed 1.8, and their challenge is decided against it; the page
    // takes it off the frontier (its parent returns) without a reload
    browser.click("#tabs button[data-tab=dag]");
    let ring = |id: &str| format!("ringAt('{id}')");
    browser.wait_for(
        "the live record on the frontier",
        &format!("{DAG_JS} return {}", ring(&live.id)),
    );
    let s = |x: &str| Value::Str(x.to_string());
    let about = |extra: Vec<(&'static str, Value)>| {
        let mut payload = vec![("experiment_id", s(&live.id)), ("task_id", s(&t))];
        payload.extend(extra);
        payload
    };
    let challenger = Identity::from_seed([43; 32]);
    let mut events = vec![sign_event(
        &challenger,
        "challenge",
        about(vec![
            (
                "event_id",
                s(&format!("challenge:{}:{}", live.id, challenger.node_id())),
            ),
            ("challenger_id", s(&challenger.node_id())),
            ("challenger_bpb", Value::Float(1.95)),
            ("challenger_gpu", s("CPU_TEST")),
        ]),
    )];
    for n in 44..47 {
        let verifier = Identity::from_seed([n; 32]);
        events.push(sign_event(
            &verifier,
            "challenge_response",
            about(vec![
                ("challenger_id", s(&challenger.node_id())),
                ("verifier_id", s(&verifier.node_id())),
                ("verifier_bpb", Value::Float(1.95)),
                ("verifier_gpu", s("CPU_TEST")),
            ]),
        ));
    }
    let verdict = dir.path().join("verdict.jsonl");
    write_jsonl(&verdict, events.into_iter().map(Message::Control).collect());
    import(dir.path(), &verdict);
    browser.wait_for(
        "the rejected record off the frontier, its parent back on it",
        &format!(
            "{DAG_JS} return {} && !{}",
            ring(&hostile.id),
            ring(&live.id)
        ),
    );
    assert_eq!(
        browser.js("return window.__marker"),
        J::String("same page".into()),
        "the verdict arrived live, not by a reload"
    );
    browser.screenshot("6-verdict");
}

#[test]
fn the_progress_plot_marks_every_record_its_best_line_ends_at_the_frontier_best_and_opens_records()
{
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // a 200-record task: keeps that improve now and then, discards, crashes, two hardware classes
    let who = Identity::from_seed([51; 32]);
    let other = Identity::from_seed([52; 32]);
    let task = signed_task(&who, "progress-task", "the progress plot's task");
    let t = task.task_id.clone();
    let mut records = vec![record(
        &who,
        &t,
        None,
        Status::Keep,
        3.0,
        "baseline",
        1_767_225_700,
    )];
    let mut best = 0;
    for i in 1..200usize {
        let parent = records[best].clone();
        let at = 1_767_225_700 + 60 * i as i64;
        let by = if i % 5 == 0 { &other } else { &who };
        let (status, value) = match i {
            i if i % 17 == 0 => (Status::Crash, 0.0),
            i if i % 3 == 0 => (Status::Keep, parent.val_bpb.value() - 0.01),
            _ => (Status::Discard, parent.val_bpb.value() + 0.05),
        };
        let mut r = record(
            by,
            &t,
            Some(&parent),
            status,
            value,
            &format!("step {i}"),
            at,
        );
        if by.node_id() == other.node_id() {
            r.gpu_model = "RTX_4090".into();
            r.sign_with(by);
        } else if i == 7 {
            // attacker-chosen text in a field the plot shows (tooltip, hardware filter)
            r.gpu_model = PAYLOAD.into();
            r.sign_with(by);
        }
        if status == Status::Keep {
            best = records.len();
        }
        records.push(r);
    }
    // a stranger's record dated far in the future: kept off the time axis, said so
    let future = record(
        &other,
        &t,
        Some(&records[0]),
        Status::Discard,
        3.5,
        "from the future",
        9_999_999_999_999,
    );
    let seed = dir.path().join("seed.jsonl");
    let mut messages = vec![Message::Task(task.clone())];
    messages.extend(records.iter().cloned().map(Message::Experiment));
    messages.push(Message::Experiment(future));
    write_jsonl(&seed, messages);
    let node = support::start(dir.path(), &[]);
    import(dir.path(), &seed);
    let (_, stat) = support::http_get(&node.web, &format!("/api/stat?task_id={t}"));
    let stat: J = serde_json::from_str(&stat).unwrap();
    let frontier_best = stat["best_val_bpb"].as_f64().unwrap();

    let browser = Browser::start(&driver);
    browser.goto(&node.web);
    browser.wait_for(
        "the task list",
        "return document.querySelectorAll('#task-select option').length > 1",
    );
    browser.js(&format!(
        "const s = document.querySelector('#task-select'); s.value = '{t}'; \
         s.dispatchEvent(new Event('change')); return null"
    ));
    browser.click("#tabs button[data-tab=progress]");
    // one mark per record, each drawn in its status's colour where the plot says it is
    let mark_colours = format!(
        "{DAG_JS} const c = document.querySelector('#progress'), b = c.getBoundingClientRect(), d = devicePixelRatio; \
         return !!plot.marks && plot.marks.ids.length === 200 && plot.marks.ids.every(id => {{ \
           const p = plotPoint(id), r = plot.data.rows.find(r => r[0] === id); \
           return near([...c.getContext('2d').getImageData(Math.round((p.x - b.left - c.clientLeft) * d), Math.round((p.y - b.top - c.clientTop) * d), 1, 1).data], r[3]); }})"
    );
    browser.wait_for("one mark per record", &mark_colours);
    let last = browser.js("return plot.best");
    assert!(
        (last.as_f64().unwrap() - frontier_best).abs() < 1e-9,
        "the best line ends at {last}, the frontier's best is {frontier_best}"
    );
    assert_eq!(
        browser.js("return plot.marks.ids.filter(id => plot.data.rows.find(r => r[0] === id)[3] === 2).length"),
        json!(records.iter().filter(|r| r.status == Status::Crash).count())
    );
    assert!(
        browser
            .js("return document.querySelector('#progress-info').textContent")
            .as_str()
            .unwrap()
            .contains("1 dated in the future, not shown"),
        "the future record is left off the axis and counted"
    );
    browser.screenshot("7-progress");
    // a hardware class alone
    let rtx = records.iter().filter(|r| r.gpu_model == "RTX_4090").count();
    browser.js("const s = document.querySelector('#progress-gpu'); \
         s.value = [...s.options].find(o => o.textContent === 'RTX_4090').value; \
         s.dispatchEvent(new Event('change')); return null");
    browser.wait_for(
        "the RTX_4090 records alone",
        &format!("return plot.marks.ids.length === {rtx}"),
    );
    // a click on a mark opens its record
    let target = records.iter().find(|r| r.gpu_model == "RTX_4090").unwrap();
    let p = browser.js(&format!("return plotPoint('{}')", target.id));
    browser.click_at(p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
    browser.wait_for(
        "the record's detail",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{}'",
            target.id
        ),
    );
    browser.screenshot("8-progress-filtered");
    // the DAG of the task
    browser.click("#tabs button[data-tab=dag]");
    browser.wait_for(
        "the DAG of the task",
        "return !!dag.rows && dag.rows.length === 201",
    );
    // the record opened on the plot (while the DAG was hidden) is in view; `f` shows the whole
    // DAG, too deep to read at once; `b` goes to the best record, drawn with its frontier ring
    let in_view = |id: &str, ring: bool| {
        format!(
            "{DAG_JS} const p = dagPoint('{id}'), b = document.querySelector('#dag').getBoundingClientRect(); \
             return !!p && p.x > b.left && p.x < b.right && p.y > b.top && p.y < b.bottom && (!{ring} || ringAt('{id}'))"
        )
    };
    browser.wait_for("the opened record in view", &in_view(&target.id, false));
    let best_id = browser.js("return plot.data.best[plot.data.best.length - 1][2]");
    let best_id = best_id.as_str().unwrap().to_string();
    assert_eq!(
        browser.js(&in_view(&best_id, true)),
        J::Bool(false),
        "the best is elsewhere"
    );
    browser.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'f'})); return null");
    browser.wait_for(
        "the whole DAG",
        "const L = dag.layout, b = document.querySelector('#dag').getBoundingClientRect(), v = state.view; \
         return b.top + v.y + (L.layers.length - 1) * DY * v.k <= b.bottom && b.left + v.x + L.minX * DX * v.k >= b.left \
                && b.left + v.x + L.maxX * DX * v.k <= b.right && dag.last.level !== 'labels'",
    );
    browser.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'b'})); return null");
    browser.wait_for("the best record in view", &in_view(&best_id, true));
    // search goes to a record: zoomed in far from them, a drawn keep and a discard folded into
    // its parent's count are each panned into view (the folded one drawn on its own)
    let in_view = |i: usize| {
        format!(
            "{DAG_JS} const p = dagPoint('{}'), b = document.querySelector('#dag').getBoundingClientRect(); \
             return !!p && p.x >= b.left && p.x <= b.right && p.y >= b.top && p.y <= b.bottom && near(px('{}', 0), {})",
            records[i].id,
            records[i].id,
            records[i].status as u8
        )
    };
    assert_eq!(records[198].status, Status::Keep);
    assert_eq!(records[199].status, Status::Discard);
    for (i, drawn) in [(198, true), (199, false)] {
        browser.js("state.view = { x: 0, y: 0, k: 3 }; applyView(); return null");
        assert_eq!(
            browser.js(&format!("return !!dagPoint('{}')", records[i].id)),
            J::Bool(drawn),
            "record {i} drawn before it is searched: {drawn}"
        );
        browser.wait_for("a frame", "return dag.frame === 0");
        assert_eq!(
            browser.js(&in_view(i)),
            J::Bool(false),
            "record {i} starts out of view"
        );
        browser.js(&format!(
            "const s = document.querySelector('#search'); s.value = '{}'; \
             s.dispatchEvent(new Event('input')); return null",
            &records[i].id[..12]
        ));
        browser.wait_for(
            "the search result",
            &format!(
                "const d = document.querySelector('#search-results div'); return !!d && !document.querySelector('#search-results').hidden && d.textContent.includes('{}')",
                &records[i].id[..8]
            ),
        );
        browser.click("#search-results div");
        browser.wait_for("the record panned into view", &in_view(i));
    }
    // a hover on the payload's mark shows its hardware as text, cut short, after what this node
    // knows of the record
    browser.click("#tabs button[data-tab=progress]");
    browser.js("const s = document.querySelector('#progress-gpu'); s.value = ''; s.dispatchEvent(new Event('change')); return null");
    let payload = &records[7];
    let p = browser.js(&format!("return plotPoint('{}')", payload.id));
    browser.move_to(p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
    browser.wait_for(
        "the payload's tooltip",
        "const t = document.querySelector('#progress-tip'); return !t.hidden && t.textContent.includes('hardware')",
    );
    let tip = browser.js("const t = document.querySelector('#progress-tip'); return [t.textContent, t.children.length]");
    let text = tip[0].as_str().unwrap();
    assert!(text.contains(&PAYLOAD[..40]), "{text}");
    assert!(!text.contains(PAYLOAD), "peer text is cut short: {text}");
    assert!(
        text.find("unverified").unwrap() < text.find("hardware").unwrap(),
        "{text}"
    );
    assert_eq!(tip[1], 0, "the tooltip holds text only");
    browser.click("#tabs button[data-tab=dag]");
    // `?` lists the keyboard shortcuts; a digit picks a tab; the URL follows
    browser.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: '?'})); return null");
    browser.wait_for(
        "the shortcuts",
        "const h = document.querySelector('#help'); return !h.hidden && h.textContent.includes('search records')",
    );
    browser.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); document.dispatchEvent(new KeyboardEvent('keydown', {key: '3'})); return null");
    browser.wait_for(
        "the frontier tab by its key",
        "return !document.querySelector('#tab-frontier').hidden && document.querySelector('#help').hidden && location.hash.includes('tab=frontier')",
    );
    assert_eq!(
        browser.js("return [typeof window.__xss, document.querySelectorAll('#tab-progress img, #tab-progress script').length]"),
        json!(["undefined", 0]),
        "the payload in a hardware class is shown as text, never run"
    );
    // on a HiDPI screen (2 device pixels per CSS pixel) every mark is still drawn where the plot
    // says, the whole DAG draws where records are, and a click on a mark opens it
    drop(browser);
    let hidpi = Browser::start_with(&driver, &["--force-device-scale-factor=2"]);
    hidpi.goto(&format!("{}/#tab=progress&task={t}", node.web));
    hidpi.wait_for("one mark per record, HiDPI", &mark_colours);
    assert_eq!(hidpi.js("return devicePixelRatio"), json!(2));
    hidpi.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'f'})); return null");
    hidpi.wait_for(
        "the whole DAG drawn where its records are, HiDPI",
        &format!(
            "{DAG_JS} return !!dag.last && dag.last.level !== 'labels' && ['{}', '{}'].every(id => {{ const c = px(id, 0); return !!c && c[3] > 200; }})",
            records[0].id, best_id
        ),
    );
    hidpi.click("#tabs button[data-tab=progress]");
    let p = hidpi.js(&format!("return plotPoint('{}')", records[3].id));
    hidpi.click_at(p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
    hidpi.wait_for(
        "the record's detail, HiDPI",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{}'",
            records[3].id
        ),
    );
}

#[test]
fn the_header_shows_what_the_node_trains_now_and_a_gpu_run_preparing_its_kernels() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // a research node training its first experiment of the default task (60 s)
    let mut cmd = spored(dir.path());
    cmd.args(support::LOOPBACK_RUN)
        .args(["--max-experiments", "1"]);
    let node = support::launch(dir.path(), cmd);
    let browser = Browser::start(&driver);
    browser.goto(&node.web);
    // the experiment is a variant of the pinned root (any config); the page polls every 2 s,
    // and a node beside a busy test run may take a while to reach its tenth step (planned)
    let line = "const t = document.querySelector('#now').textContent; \
                return /^training \\d+L d\\d+ .*: step \\d+\\/\\d+ · loss [0-9.]+ · [0-9.]+k tok\\/s · \\d+ s left$/.test(t)";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while browser.js(line) != J::Bool(true) {
        let shown = browser.js("return document.querySelector('#now').textContent");
        assert!(
            std::time::Instant::now() < deadline,
            "the header never showed the training line: {shown}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // how the header says a GPU run's start and two GPUs' runs: the page's own code, given the
    // rows `/api/training` sends (this machine has no GPU)
    let said = browser.js(
        "const prep = {label: 'the task\\'s baseline', device: 'gpu 0', preparing: {text: \
         'preparing GPU kernels (3/4: the first forward and backward pass, 41 s)'}}; \
         const busy = {label: 'x', device: 'gpu 1', preparing: null, step: 5, planned: 9, \
         loss: 1.5, tokens_per_s: 2000, elapsed: 10, budget: 300}; \
         return [runText(prep, false), runText(busy, true)]",
    );
    assert_eq!(
        said[0],
        "the task's baseline: preparing GPU kernels (3/4: the first forward and backward pass, 41 s)"
    );
    assert_eq!(
        said[1],
        "gpu 1: training x: step 5/9 · loss 1.500 · 2.0k tok/s · 290 s left"
    );
    browser.screenshot("11-header-training");
}

#[test]
fn a_record_page_shows_the_loss_curve_of_a_real_training_run() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // a research node on the default task: one short experiment
    let mut cmd = spored(dir.path());
    cmd.args(support::LOOPBACK_RUN)
        .args(["--time-budget", "3", "--max-experiments", "1"]);
    let node = support::launch(dir.path(), cmd);
    support::wait_until("the node's experiment", 120, || {
        support::info(dir.path())["experiment_count"].as_i64() == Some(2)
    });
    let (_, recent) = support::http_get(&node.web, "/api/recent?limit=5");
    let recent: J = serde_json::from_str(&recent).unwrap();
    let trained = recent
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["parent"].is_string())
        .expect("the experiment (the root is the pinned baseline)")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, curve) = support::http_get(&node.web, &format!("/api/experiment/{trained}/curve"));
    let curve: J = serde_json::from_str(&curve).unwrap();
    assert_eq!(curve["local"], true);
    let points = curve["run"].as_array().expect("the run's curve").len();
    assert!(points >= 2, "{curve}");
    // the pinned root was not trained here: no curve of it
    assert!(curve["parent_run"].is_null(), "{curve}");

    let browser = Browser::start(&driver);
    browser.goto(&node.web);
    browser.click("#tabs button[data-tab=activity]");
    browser.click(&format!("#activity li[data-id=\"{trained}\"]"));
    browser.wait_for(
        "the loss curve in the record's page",
        &format!(
            "const p = document.querySelector('#curve path.curve.run'); \
             return !!p && p.dataset.points === '{points}'"
        ),
    );
    let said = browser.js("return document.querySelector('#detail').textContent");
    assert!(
        said.as_str().unwrap().contains("not synced and not signed"),
        "the page says the curve is local: {said}"
    );
    browser.screenshot("9-loss-curve");

    // a comparison URL opened in a fresh page shows that comparison: both records, the config
    // diff between them, their curves
    let root = curve["parent_id"].as_str().unwrap().to_string();
    browser.goto("about:blank");
    browser.goto(&format!(
        "{}/#tab=compare&compare={root},{trained}",
        node.web
    ));
    browser.wait_for(
        "the comparison of both records",
        &format!(
            "const ids = [...document.querySelectorAll('#compare-table th[data-id]')].map(t => t.dataset.id);              return ids.join(',') === '{root},{trained}'"
        ),
    );
    browser.wait_for(
        "the config diff",
        "return document.querySelectorAll('#compare-diff pre.diff span.add').length > 0",
    );
    browser.screenshot("10-compare");
    // another view, then back: the comparison again, from history
    browser.click("#tabs button[data-tab=dag]");
    browser.wait_for("the DAG's URL", "return location.hash.includes('tab=dag')");
    browser.js("history.back(); return null");
    browser.wait_for(
        "the comparison again after back",
        "return !document.querySelector('#tab-compare').hidden &&          location.hash.includes('tab=compare') &&          document.querySelectorAll('#compare-table th[data-id]').length === 2",
    );
    // a record's own URL
    browser.goto("about:blank");
    browser.goto(&format!("{}/#tab=dag&record={trained}", node.web));
    browser.wait_for(
        "the record from its URL",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{trained}'"
        ),
    );
}
