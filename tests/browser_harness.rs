//! The WebDriver harness (tests/support/browser.rs) against Debian's real headless Chromium: a page served
//! from this test with a text input, a button and a 400×300 canvas that records where the pointer went down
//! (normalised to the canvas), so typing, clicking, pointer actions at normalised points, dragging, cookies
//! and screenshots are each checked against what the page itself saw.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::browser::{Browser, is_non_blank};

const PAGE: &str = r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>区域编辑</title>
<style>
  body { margin: 8px; font: 16px sans-serif; background: #fff; }
  canvas { display: block; margin-top: 12px; background: #e8f0ff; }
</style></head>
<body>
<h1>区域编辑</h1>
<input id="name" placeholder="区域名称"> <button id="save">保存</button> <span id="saved"></span>
<canvas id="zone" width="400" height="300"></canvas>
<script>
  window.clicks = [];
  window.drags = [];
  window.doubles = [];
  window.moves = 0;
  const canvas = document.getElementById('zone');
  const g = canvas.getContext('2d');
  g.strokeStyle = '#c00';
  g.lineWidth = 3;
  g.strokeRect(40, 30, 320, 240);
  g.fillStyle = '#036';
  g.font = '20px sans-serif';
  g.fillText('摊位 1 占道经营', 60, 70);
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
  };
  let down = null;
  canvas.addEventListener('pointerdown', (e) => {
    down = at(e);
    window.clicks.push(down);
    g.fillStyle = '#0a0';
    g.fillRect(down[0] * 400 - 4, down[1] * 300 - 4, 8, 8);
  });
  canvas.addEventListener('pointermove', () => { if (down) window.moves += 1; });
  canvas.addEventListener('pointerup', (e) => {
    if (down) window.drags.push([down, at(e)]);
    down = null;
  });
  canvas.addEventListener('dblclick', (e) => window.doubles.push(at(e)));
  document.getElementById('save').addEventListener('click', () => {
    const name = document.getElementById('name').value;
    document.getElementById('saved').textContent = '已保存：' + name;
    document.cookie = 'zone=' + encodeURIComponent(name) + '; path=/';
  });
</script>
</body></html>
"#;

/// Serve `PAGE` at `/` (404 elsewhere) on a loopback port, one answer per connection. The accepting thread
/// lives as long as the test process.
fn serve_page() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let (status, body) = if head.starts_with(b"GET / ") {
                ("200 OK", PAGE)
            } else {
                ("404 Not Found", "")
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    format!("http://127.0.0.1:{port}/")
}

/// The recorded point as canvas pixels, for comparison with what was asked.
fn px(point: &serde_json::Value) -> (f64, f64) {
    (
        point[0].as_f64().unwrap() * 400.0,
        point[1].as_f64().unwrap() * 300.0,
    )
}

fn assert_near(seen: &serde_json::Value, asked: (f64, f64)) {
    let (x, y) = px(seen);
    let (ax, ay) = (asked.0 * 400.0, asked.1 * 300.0);
    assert!(
        (x - ax).abs() <= 1.0 && (y - ay).abs() <= 1.0,
        "asked for ({ax}, {ay}) px on the canvas, the page saw ({x}, {y})"
    );
}

#[test]
fn browser_types_clicks_drags_and_screenshots_a_canvas_page() {
    let started = Instant::now();
    let url = serve_page();
    let b = Browser::start();
    b.goto(&url);
    let canvas = b.wait_for("canvas#zone", Duration::from_secs(10));
    let viewport = b.execute("return [window.innerWidth, window.innerHeight];", &[]);
    eprintln!("viewport {viewport} (window 1280x900)");

    let name = b.find("#name");
    name.type_text("草稿");
    name.clear();
    name.type_text("摊位-1");
    assert_eq!(name.property("value"), "摊位-1");
    assert_eq!(b.find_all("input, button").len(), 2);
    assert_eq!(b.cookie("zone"), None);
    b.find("#save").click();
    b.wait_until(
        "document.getElementById('saved').textContent !== ''",
        Duration::from_secs(5),
    );
    assert_eq!(b.find("#saved").text(), "已保存：摊位-1");
    let cookie = b.cookie("zone").expect("the button set the cookie");
    assert_eq!(cookie["value"], "%E6%91%8A%E4%BD%8D-1");

    let points = [(0.1, 0.1), (0.9, 0.15), (0.85, 0.9), (0.2, 0.75)];
    for (nx, ny) in points {
        b.click_at(&canvas, nx, ny);
    }
    let clicks = b.execute("return window.clicks;", &[]);
    let clicks = clicks.as_array().unwrap();
    assert_eq!(clicks.len(), points.len(), "pointerdowns: {clicks:?}");
    for (seen, asked) in clicks.iter().zip(points) {
        assert_near(seen, asked);
    }

    b.drag(&canvas, (0.3, 0.4), (0.7, 0.6));
    let drags = b.execute("return [window.drags, window.moves];", &[]);
    let last = &drags[0].as_array().unwrap().last().unwrap();
    assert_near(&last[0], (0.3, 0.4));
    assert_near(&last[1], (0.7, 0.6));
    assert!(
        drags[1].as_u64().unwrap() >= 3,
        "a drag moves in steps: {drags}"
    );

    b.double_click_at(&canvas, 0.5, 0.5);
    let doubles = b.execute("return window.doubles;", &[]);
    assert_eq!(doubles.as_array().unwrap().len(), 1, "dblclicks: {doubles}");
    assert_near(&doubles[0], (0.5, 0.5));

    let shot = b.screenshot();
    assert_eq!(
        (shot.width(), shot.height()),
        (
            viewport[0].as_u64().unwrap() as u32,
            viewport[1].as_u64().unwrap() as u32
        ),
        "a screenshot is the viewport"
    );
    assert!(is_non_blank(&shot), "the page's screenshot looks blank");
    let white = image::RgbaImage::from_pixel(64, 48, image::Rgba([255, 255, 255, 255]));
    assert!(!is_non_blank(&white), "an all-white image counts as blank");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("canvas-page.png");
    b.save_screenshot(&saved);
    assert!(is_non_blank(&image::open(&saved).unwrap().to_rgba8()));
    eprintln!("browser test took {:?}", started.elapsed());
}

/// chromedriver's error JSON (HTTP 404 here) reaches the test as WebDriver's own error name and message, and
/// the browser is still shut down while the panic unwinds.
#[test]
#[should_panic(expected = "no such element")]
fn a_missing_element_fails_with_webdrivers_error() {
    let url = serve_page();
    let b = Browser::start();
    b.goto(&url);
    b.find("#no-such-thing");
}
