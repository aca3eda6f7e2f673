//! The preview pane playing a clip: each frame is encoded for the terminal's protocol once per
//! area and kept while the clip's encodings fit a budget (kitty then sends each image once and
//! later loops only place it); the frame counter sits on the label line.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

use super::{PreviewPane, Shown, label_row, pin_escape_cells};
use crate::tui::panes::{DrawCtx, Handled, ellipsize};
use crate::tui::preview::video::{Clip, Player};

/// Encoded frames kept for one area at most (about 6 bytes a pixel for kitty's base64 RGBA).
const CACHE_BUDGET_BYTES: u64 = 128 << 20;

/// The clip's frames encoded for `area`; only the shown one when all would not fit.
#[derive(Default)]
pub(super) struct FrameCache {
    area: Rect,
    slots: Vec<Option<Protocol>>,
    keep_all: bool,
}

/// Space pauses or plays on; Left/Right step a frame.
pub(super) fn key(player: &mut Player, key: &KeyEvent) -> Handled {
    match key.code {
        KeyCode::Char(' ') => player.toggle(Instant::now()),
        KeyCode::Left | KeyCode::Char('h' | ',') => player.step(false),
        KeyCode::Right | KeyCode::Char('l' | '.') => player.step(true),
        _ => return Handled::Ignored,
    }
    Handled::Consumed
}

impl PreviewPane {
    /// A decoded clip: it plays where the terminal shows images, else holds its middle frame.
    pub fn set_video(&mut self, clip: Clip) {
        let animates = self
            .picker
            .as_ref()
            .is_some_and(|p| p.protocol_type() != ratatui_image::picker::ProtocolType::Halfblocks);
        self.label = clip.label.clone();
        self.frames = FrameCache::default();
        self.shown = Shown::Video(Box::new(Player::new(clip, animates, Instant::now())));
    }

    /// Whether a clip is playing (the loop then advances it on its frame clock).
    pub fn animating(&self) -> bool {
        matches!(&self.shown, Shown::Video(p) if p.playing())
    }

    /// Moves a playing clip to the frame due at `now`; true when the frame changed.
    pub fn advance(&mut self, now: Instant) -> bool {
        match &mut self.shown {
            Shown::Video(p) => p.advance(now),
            _ => false,
        }
    }

    /// The frame shown, encoded for `inner` unless it already is.
    pub(super) fn prepare_video(&mut self, inner: Rect) {
        let (Shown::Video(player), Some(picker)) = (&self.shown, &self.picker) else {
            return;
        };
        if inner.width == 0 || inner.height == 0 {
            return;
        }
        let n = player.clip.frames.len();
        let cache = &mut self.frames;
        if cache.area != inner || cache.slots.len() != n {
            let font = picker.font_size();
            let pixels = u64::from(inner.width)
                * u64::from(font.0)
                * u64::from(inner.height)
                * u64::from(font.1);
            *cache = FrameCache {
                area: inner,
                slots: (0..n).map(|_| None).collect(),
                keep_all: pixels * 6 * n as u64 <= CACHE_BUDGET_BYTES,
            };
        }
        let i = player.shown();
        if cache.slots.get(i).is_some_and(Option::is_some) {
            return;
        }
        let Some(image) = player.frame() else {
            return;
        };
        match picker.new_protocol(image.clone(), inner, Resize::Fit(None)) {
            Ok(p) => {
                if !cache.keep_all {
                    cache.slots.iter_mut().for_each(|s| *s = None);
                }
                cache.slots[i] = Some(p);
            }
            Err(e) => tracing::warn!("cannot encode video frame {i}: {e}"),
        }
    }

    pub(super) fn draw_video(&self, frame: &mut Frame, area: Rect, player: &Player, ctx: &DrawCtx) {
        let t = ctx.theme;
        let inner = ctx.block(" Preview ").inner(area);
        let image_area = self.block_inner(area);
        let label_area = label_row(inner, image_area);
        let encoded = self
            .frames
            .slots
            .get(player.shown())
            .and_then(Option::as_ref);
        match (&self.picker, encoded) {
            (None, _) => frame.render_widget(
                Paragraph::new("previews off (--preview-protocol none)").style(t.muted()),
                image_area,
            ),
            (Some(_), None) => frame.render_widget(
                Paragraph::new("preparing preview…").style(t.muted()),
                image_area,
            ),
            (Some(_), Some(proto)) if self.frames.area == image_area => {
                frame.render_widget(Image::new(proto), image_area);
                pin_escape_cells(frame.buffer_mut(), image_area);
            }
            (Some(_), Some(_)) => {}
        }
        let line = format!("{} · {}", player.counter(), player.clip.label);
        frame.render_widget(
            Paragraph::new(Line::styled(
                ellipsize(&line, usize::from(label_area.width)),
                t.muted(),
            )),
            label_area,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use image::{DynamicImage, RgbImage};
    use ratatui_image::picker::Picker;

    use super::*;

    fn clip(n: usize) -> Clip {
        Clip {
            label: "1_a-fox.mp4".into(),
            fps: 16.0,
            size: (8, 4),
            frames: (0..n)
                .map(|i| {
                    DynamicImage::ImageRgb8(RgbImage::from_pixel(
                        8,
                        4,
                        image::Rgb([i as u8 * 20; 3]),
                    ))
                })
                .collect(),
        }
    }

    #[test]
    fn halfblocks_encode_the_middle_frame_and_do_not_play() {
        let mut pane = PreviewPane::new(Some(Picker::halfblocks()));
        pane.set_video(clip(5));
        assert!(!pane.animating());
        let area = Rect::new(0, 0, 20, 10);
        pane.prepare(area);
        let inner = pane.block_inner(area);
        assert_eq!(pane.frames.area, inner);
        assert!(pane.frames.slots[2].is_some() && pane.frames.slots[0].is_none());
        assert!(!pane.advance(Instant::now()));
        // Right steps to the next frame, which is encoded on the next prepare.
        let right = KeyEvent::from(KeyCode::Right);
        let mut out = Vec::new();
        use crate::tui::panes::Pane;
        pane.handle(
            &crate::tui::event::AppEvent::Input(crossterm::event::Event::Key(right)),
            &mut out,
        );
        pane.prepare(area);
        assert!(pane.frames.slots[3].is_some());
    }
}
