//! Canny edges as OpenCV 4's `cv2.Canny(image, low, high)` computes them (what the diffusers
//! ControlNet docs run on the control image): 3x3 Sobel derivatives with replicated borders, the
//! L1 magnitude |dx| + |dy| (of an RGB image: the channel where it is largest), non-maximum
//! suppression along the gradient quantised to four directions with OpenCV's fixed-point
//! tangents, and hysteresis: pixels above `high` seed edges that grow through 8-connected pixels
//! above `low`. OpenCV's Canny does not blur first; neither does this.

use std::collections::VecDeque;

/// tan(22.5 degrees) in OpenCV's 15-bit fixed point.
const SHIFT: i64 = 15;
const TG22: i64 = 13573;

/// The 3x3 Sobel derivatives (dx, dy) of one channel, borders replicated (OpenCV's
/// `Sobel(src, CV_16S, ..., BORDER_REPLICATE)`).
fn sobel(px: &dyn Fn(usize, usize) -> i32, w: usize, h: usize) -> (Vec<i32>, Vec<i32>) {
    let (mut dx, mut dy) = (vec![0; w * h], vec![0; w * h]);
    let at = |x: isize, y: isize| {
        px(
            x.clamp(0, w as isize - 1) as usize,
            y.clamp(0, h as isize - 1) as usize,
        )
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = (at(x + 1, y - 1) - at(x - 1, y - 1))
                + 2 * (at(x + 1, y) - at(x - 1, y))
                + (at(x + 1, y + 1) - at(x - 1, y + 1));
            let gy = (at(x - 1, y + 1) - at(x - 1, y - 1))
                + 2 * (at(x, y + 1) - at(x, y - 1))
                + (at(x + 1, y + 1) - at(x + 1, y - 1));
            let i = y as usize * w + x as usize;
            dx[i] = gx;
            dy[i] = gy;
        }
    }
    (dx, dy)
}

/// Canny edges (255 on an edge, 0 elsewhere) of an RGB image, as `cv2.Canny(np.array(image),
/// low, high)`.
pub fn canny(image: &image::RgbImage, low: f64, high: f64) -> image::GrayImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (mut low, mut high) = (low, high);
    if low > high {
        std::mem::swap(&mut low, &mut high);
    }
    let (low, high) = (low.floor() as i64, high.floor() as i64);
    // Per pixel: the channel with the largest |dx| + |dy| (the first on ties), and its dx, dy.
    let mut mag = vec![0i64; w * h];
    let (mut gdx, mut gdy) = (vec![0i64; w * h], vec![0i64; w * h]);
    for c in 0..3 {
        let px = |x: usize, y: usize| i32::from(image.get_pixel(x as u32, y as u32)[c]);
        let (dx, dy) = sobel(&px, w, h);
        for i in 0..w * h {
            let m = i64::from(dx[i].abs() + dy[i].abs());
            if c == 0 || m > mag[i] {
                mag[i] = m;
                gdx[i] = i64::from(dx[i]);
                gdy[i] = i64::from(dy[i]);
            }
        }
    }
    // Neighbours outside the image have magnitude 0.
    let m_at = |x: isize, y: isize| -> i64 {
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
            0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    // 0: may be an edge, 1: not an edge, 2: an edge.
    let mut map = vec![1u8; w * h];
    let mut stack = VecDeque::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let m = mag[i];
            if m <= low {
                continue;
            }
            let (xs, ys) = (gdx[i], gdy[i]);
            let ax = xs.abs();
            let ay = ys.abs() << SHIFT;
            let tg22x = ax * TG22;
            let (xi, yi) = (x as isize, y as isize);
            let maximum = if ay < tg22x {
                m > m_at(xi - 1, yi) && m >= m_at(xi + 1, yi)
            } else {
                let tg67x = tg22x + (ax << (SHIFT + 1));
                if ay > tg67x {
                    m > m_at(xi, yi - 1) && m >= m_at(xi, yi + 1)
                } else {
                    let s: isize = if (xs ^ ys) < 0 { -1 } else { 1 };
                    m > m_at(xi - s, yi - 1) && m > m_at(xi + s, yi + 1)
                }
            };
            if !maximum {
                continue;
            }
            if m > high {
                map[i] = 2;
                stack.push_back(i);
            } else {
                map[i] = 0;
            }
        }
    }
    while let Some(i) = stack.pop_back() {
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        for (ox, oy) in [
            (-1, -1),
            (0, -1),
            (1, -1),
            (-1, 0),
            (1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
        ] {
            let (nx, ny) = (x + ox, y + oy);
            if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            if map[j] == 0 {
                map[j] = 2;
                stack.push_back(j);
            }
        }
    }
    let data = map.iter().map(|&v| if v == 2 { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(w as u32, h as u32, data).unwrap_or_default()
}

/// The edges stacked to three channels, as the diffusers docs pass them to the pipeline.
pub fn canny_rgb(image: &image::RgbImage, low: f64, high: f64) -> image::RgbImage {
    let edges = canny(image, low, high);
    image::RgbImage::from_fn(edges.width(), edges.height(), |x, y| {
        let v = edges.get_pixel(x, y)[0];
        image::Rgb([v, v, v])
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/canny")
            .join(name)
    }

    /// Ours against OpenCV's (tests/fixtures/make_controlnet.py) on every committed image and
    /// threshold pair: at most a few pixels differ.
    #[test]
    fn canny_matches_opencv() {
        let mut checked = 0;
        for stem in ["pattern", "photo", "photo_b"] {
            let image = image::open(fixture(&format!("{stem}.png")))
                .unwrap()
                .to_rgb8();
            for (low, high) in [(100, 200), (50, 150), (20, 60)] {
                let theirs = image::open(fixture(&format!("canny_{stem}_{low}_{high}.png")))
                    .unwrap()
                    .to_luma8();
                let ours = canny(&image, f64::from(low), f64::from(high));
                let edges = theirs.pixels().filter(|p| p[0] > 0).count();
                let differ = ours
                    .pixels()
                    .zip(theirs.pixels())
                    .filter(|(a, b)| a[0] != b[0])
                    .count();
                assert!(edges > 50, "{stem} {low} {high}: only {edges} edge pixels");
                assert!(
                    differ <= 3,
                    "{stem} {low}/{high}: {differ} of {edges} edge pixels differ from OpenCV"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 9);
    }

    #[test]
    fn thresholds_move_the_edges() {
        let image = image::open(fixture("photo.png")).unwrap().to_rgb8();
        let count = |l, h| canny(&image, l, h).pixels().filter(|p| p[0] > 0).count();
        assert!(count(20.0, 60.0) > 2 * count(100.0, 200.0));
    }
}
