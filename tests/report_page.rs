//! A run's `report.html`, opened in headless Chromium: the screenshot must show the page's
//! pictures (their pixels found in it), the confusion heat map and the plots' lines. Chromium
//! is Debian's `chromium` package; `.ci/run` installs it when it is missing, and without it
//! this test fails, saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Scratch;

fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|folder| folder.join(name))
                    .find(|path| path.is_file())
            })
        })
        .expect(
            "headless Chromium is needed for this test: apt-get install chromium (.ci/run \
             installs it when it is missing)",
        )
}

/// An RGB(A) or grayscale PNG as rows of RGB pixels.
struct Rgb {
    width: usize,
    height: usize,
    pixels: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Rgb {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut bytes = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut bytes).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    let channels = info.color_type.samples();
    let pixels = bytes[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|pixel| match channels {
            1 | 2 => [pixel[0]; 3],
            _ => [pixel[0], pixel[1], pixel[2]],
        })
        .collect();
    Rgb {
        width: info.width as usize,
        height: info.height as usize,
        pixels,
    }
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

/// True when the `length` pixels of `picture`'s row `row` from column `start` appear, in
/// order, somewhere in `shot`.
fn row_appears(shot: &Rgb, picture: &Rgb, row: usize, start: usize, length: usize) -> bool {
    let wanted = &picture.pixels[row * picture.width + start..][..length];
    (0..shot.height).any(|y| {
        let line = &shot.pixels[y * shot.width..][..shot.width];
        line.windows(length)
            .any(|window| window.iter().zip(wanted).all(|(&a, &b)| close(a, b, 3)))
    })
}

/// A row of `picture` with many distinct shades (a segment no plain page area could match),
/// and its start and length.
fn busy_segment(picture: &Rgb) -> (usize, usize, usize) {
    let length = 40.min(picture.width);
    (0..picture.height)
        .flat_map(|row| {
            (0..=picture.width - length)
                .step_by(7)
                .map(move |start| (row, start))
        })
        .max_by_key(|&(row, start)| {
            let segment = &picture.pixels[row * picture.width + start..][..length];
            let mut shades: Vec<u8> = segment.iter().map(|pixel| pixel[0]).collect();
            shades.sort_unstable();
            shades.dedup();
            shades.len()
        })
        .map(|(row, start)| (row, start, length))
        .unwrap()
}

fn count(shot: &Rgb, color: [u8; 3], tolerance: u8) -> usize {
    shot.pixels
        .iter()
        .filter(|&&pixel| close(pixel, color, tolerance))
        .count()
}

/// Runs the `backprop` command and requires it to succeed.
fn backprop(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn report_html_renders_with_its_pictures_in_headless_chromium() {
    let browser = chromium();
    let scratch = Scratch::new("report");
    let run = scratch.join("run");
    let run_arg = run.to_str().unwrap();
    backprop(&[
        "train", "--hidden", "32", "--limit", "2000", "--epochs", "2", "--quiet", "--out", run_arg,
    ]);
    for file in [
        "report.html",
        "weights.png",
        "mistakes.png",
        "confusion.svg",
        "loss.svg",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // eval draws the same pictures from the model file alone.
    let pictures = scratch.join("eval-pictures");
    let model = run.join("model.safetensors");
    let pictures_arg = pictures.to_str().unwrap();
    backprop(&[
        "eval",
        "--quiet",
        "--model",
        model.to_str().unwrap(),
        "--pictures",
        pictures_arg,
    ]);
    for file in ["weights.png", "mistakes.png", "confusion.svg"] {
        assert_eq!(
            std::fs::read(pictures.join(file)).unwrap(),
            std::fs::read(run.join(file)).unwrap(),
            "eval's {file} differs from the run's"
        );
    }
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        !page.contains("<script") && !page.contains("http"),
        "offline, no script: {page}"
    );

    // The screenshot, at one device pixel per CSS pixel, the browser stopped if it hangs.
    let shot_path = scratch.join("shot.png");
    let mut browser = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1400,3200",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot_path.display()))
        .arg(format!("file://{}", run.join("report.html").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while browser.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            browser.kill().unwrap();
            panic!("headless Chromium did not finish the screenshot in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let shot = decode(&shot_path);

    // The two PNGs, pixel for pixel: a busy stretch of each is in the screenshot.
    for picture in ["weights.png", "mistakes.png"] {
        let image = decode(&run.join(picture));
        let (row, start, length) = busy_segment(&image);
        assert!(
            row_appears(&shot, &image, row, start, length),
            "{picture}: its row {row} (columns {start}..{}) is not in the screenshot {}",
            start + length,
            shot_path.display()
        );
    }
    // The heat map: the diagonal's dark blue fills whole cells (44 x 44 pixels each).
    let dark_cells = count(&shot, [8, 48, 107], 40);
    assert!(
        dark_cells > 2 * 44 * 44,
        "confusion.svg: {dark_cells} dark blue pixels"
    );
    // The plots: the blue and red lines of the accuracy and loss charts.
    assert!(
        count(&shot, [0, 0, 255], 30) > 200,
        "no blue plot line in the screenshot"
    );
    assert!(
        count(&shot, [255, 0, 0], 30) > 100,
        "no red plot line in the screenshot"
    );
}
