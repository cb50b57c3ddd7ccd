//! The explorer's DAG and progress plot in headless Chromium (issue #21): first paint and
//! frame rate while panning and zooming, for tasks of N records (imported into a data dir and
//! served by `spored explorer` on 127.0.0.1, as `benches/explorer.rs` does).
//!
//!     cargo bench --bench dashboard -- [--records 1000,10000,100000] [--frames 120]
//!
//! Needs Debian's `chromium` and `chromium-driver`. Figures come from the page's own clock
//! (the Performance API): first paint is the `dag-first-paint` mark (navigation start to the
//! first frame with records drawn, the `/api/progress` load and the layout included); a frame
//! rate is frames shown per second while every frame moves the view and redraws.

use std::time::{Duration, Instant};

use serde_json::Value as J;

mod common;
#[path = "../tests/support/mod.rs"]
mod support;
use support::browser::{on_path, Browser};

/// Runs `script` (which must end by setting `window.__bench`) and waits for its result.
fn measure(browser: &Browser, script: &str) -> J {
    browser.js(&format!("window.__bench = null; {script}; return null"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = browser.js("return window.__bench");
        if !got.is_null() {
            return got;
        }
        assert!(Instant::now() < deadline, "timed out: {script}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `frames` animation frames, each calling `step(n)` then `draw()`: frames per second as the
/// page's frames came, and the draw's own time per frame (median and 95th percentile, ms).
fn frames(browser: &Browser, frames: usize, step: &str, draw: &str) -> (f64, f64, f64) {
    let got = measure(
        browser,
        &format!(
            "const times = [], draws = []; let n = 0;
             const frame = (ts) => {{
               times.push(ts);
               const step = {step}; step(n);
               const t = performance.now(); {draw}; draws.push(performance.now() - t);
               if (++n < {frames}) requestAnimationFrame(frame);
               else {{
                 draws.sort((a, b) => a - b);
                 window.__bench = [(times.length - 1) * 1000 / (times[times.length - 1] - times[0]),
                                   draws[Math.floor(draws.length / 2)], draws[Math.floor(draws.length * 0.95)]];
               }}
             }};
             requestAnimationFrame(frame)"
        ),
    );
    (
        got[0].as_f64().unwrap(),
        got[1].as_f64().unwrap(),
        got[2].as_f64().unwrap(),
    )
}

/// A screenshot in `target/tmp/browser/dashboard-NAME.png`, after the next frame is drawn.
fn shot(browser: &Browser, name: &str) {
    measure(
        browser,
        "requestAnimationFrame(() => requestAnimationFrame(() => { window.__bench = true; }))",
    );
    browser.screenshot(&format!("dashboard-{name}"));
}

fn main() {
    let Some(driver) = on_path("chromedriver") else {
        eprintln!("skipped: no chromedriver on PATH (apt-get install chromium chromium-driver)");
        return;
    };
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .map_or("1000,10000,100000", String::as_str)
        .split(',')
        .map(|n| n.parse().expect("--records N[,N…]"))
        .collect();
    let count = common::arg("--frames", 120);
    println!(
        "| records | /api/progress loaded | DAG laid out | DAG first paint | DAG pan+zoom, whole DAG: fps (draw p50/p95 ms) | DAG pan+zoom, zoomed in | plot first paint | plot zoom: fps (draw p50/p95 ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let explorer = common::Explorer::over_generated(n);
        let url = format!("http://{}", explorer.host);

        let browser = Browser::start(&driver);
        browser.goto(&url);
        let mark = |name: &str| {
            let script = format!(
                "const m = performance.getEntriesByName('{name}'); return m.length ? m[0].startTime : null"
            );
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Some(t) = browser.js(&script).as_f64() {
                    return t;
                }
                assert!(Instant::now() < deadline, "no {name} mark");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let (loaded, laid_out, painted) = (
            mark("records-loaded"),
            mark("dag-laid-out"),
            mark("dag-first-paint"),
        );
        let drawn = browser.js("return dag.last");
        let layout = browser.js(
            "const t = []; for (let k = 0; k < 5; k++) { const s = performance.now(); buildDag(); t.push(performance.now() - s); } \
             return t.sort((a, b) => a - b)[2]",
        );
        let fetched = browser.js(
            "const r = performance.getEntriesByType('resource').find(e => e.name.includes('/api/progress')); \
             return r ? [r.requestStart, r.responseStart, r.responseEnd, r.encodedBodySize] : null",
        );
        // the whole DAG in view: pan across and zoom in and out around the centre
        browser.js("fit(); return null");
        shot(&browser, &format!("{n}-dag-whole"));
        let whole = frames(
            &browser,
            count,
            "(n) => { const v = state.view, f = n % 40 < 20 ? 1.02 : 1 / 1.02, c = 500; \
               v.x = c - (c - v.x) * f + 3; v.y = c - (c - v.y) * f; v.k *= f; }",
            "drawDag()",
        );
        // zoomed in on the best record, labels drawn
        browser.js(
            "state.view.k = 1; const i = dag.layout.best ?? 0, L = dag.layout; \
             state.view.x = 500 - L.x[i] * DX; state.view.y = 300 - L.depth[i] * DY; return null",
        );
        let zoomed = frames(
            &browser,
            count,
            "(n) => { const v = state.view; v.x += n % 40 < 20 ? 6 : -6; v.y += 4 * Math.sin(n / 6); }",
            "drawDag()",
        );
        let zoomed_level = browser.js("return drawDag().level");
        shot(&browser, &format!("{n}-dag-zoomed"));
        // the progress plot: its tab opened (the rows are loaded), then zoomed on time
        let plot_paint = measure(
            &browser,
            "const t = performance.now(); showTab('progress'); \
             requestAnimationFrame(() => requestAnimationFrame(() => { window.__bench = performance.now() - t; }))",
        )
        .as_f64()
        .unwrap();
        let plot = frames(
            &browser,
            count,
            "(n) => { const [t0, t1] = plot.drawn, mid = (t0 + t1) / 2, f = n % 40 < 20 ? 0.97 : 1 / 0.97; \
               plot.range = [mid - (mid - t0) * f, mid + (t1 - mid) * f]; }",
            "drawProgress()",
        );
        let marks = browser.js("return plot.marks.ids.length");
        shot(&browser, &format!("{n}-progress"));
        println!(
            "| {n} | {loaded:.0} ms | {laid_out:.0} ms | **{painted:.0} ms** | {:.1} fps ({:.1}/{:.1}) | {:.1} fps ({:.1}/{:.1}) | {plot_paint:.0} ms | {:.1} fps ({:.1}/{:.1}) |",
            whole.0, whole.1, whole.2, zoomed.0, zoomed.1, zoomed.2, plot.0, plot.1, plot.2
        );
        eprintln!("  /api/progress [request sent, first byte, last byte, bytes]: {fetched}; layout (buildDag, median of 5) {layout:.0} ms");
        eprintln!("  first frame drew {drawn}; zoomed in: {zoomed_level} level; the plot drew {marks} marks");
    }
}
