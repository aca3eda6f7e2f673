//! Preview: the live latent preview while a job runs, else the latest output. The image is encoded
//! for the terminal's protocol in `prepare` (before drawing, when the image or the area changed),
//! so drawing only copies cells.

use image::{DynamicImage, RgbImage};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

use super::{Action, DrawCtx, Handled, Pane};
use crate::jobs::JobEvent;
use crate::tui::event::AppEvent;

#[derive(Default)]
pub struct PreviewPane {
    picker: Option<Picker>,
    label: String,
    image: Option<DynamicImage>,
    /// The encoded image and the area it was encoded for.
    encoded: Option<(Protocol, Rect)>,
}

impl std::fmt::Debug for PreviewPane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewPane")
            .field("label", &self.label)
            .field("has_image", &self.image.is_some())
            .finish()
    }
}

impl PreviewPane {
    /// `None` turns previews off (`--preview-protocol none`).
    pub fn new(picker: Option<Picker>) -> Self {
        Self {
            picker,
            ..Self::default()
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn set_image(&mut self, label: String, image: DynamicImage) {
        self.label = label;
        self.image = Some(image);
        self.encoded = None;
    }

    /// Encodes the image for `area` (the pane's outer area) if that is not done yet.
    pub fn prepare(&mut self, area: Rect) {
        let inner = self.block_inner(area);
        let (Some(picker), Some(image)) = (&self.picker, &self.image) else {
            return;
        };
        if inner.width == 0
            || inner.height == 0
            || self.encoded.as_ref().is_some_and(|(_, r)| *r == inner)
        {
            return;
        }
        match picker.new_protocol(image.clone(), inner, Resize::Fit(None)) {
            Ok(p) => self.encoded = Some((p, inner)),
            Err(e) => {
                tracing::warn!("cannot encode the preview: {e}");
                self.encoded = None;
            }
        }
    }

    fn block_inner(&self, area: Rect) -> Rect {
        // Matches `DrawCtx::block`: a one-cell border, one line for the label.
        let inner = Rect::new(
            area.x.saturating_add(1),
            area.y.saturating_add(1),
            area.width.saturating_sub(2),
            area.height.saturating_sub(2),
        );
        Rect::new(
            inner.x,
            inner.y,
            inner.width,
            inner.height.saturating_sub(1),
        )
    }
}

impl Pane for PreviewPane {
    fn handle(&mut self, event: &AppEvent, out: &mut Vec<Action>) -> Handled {
        match event {
            AppEvent::Job(JobEvent::Preview {
                job,
                width,
                height,
                pixels,
            }) => {
                if let Some(img) = RgbImage::from_raw(*width, *height, pixels.clone()) {
                    self.set_image(
                        format!("job {job}: latent preview"),
                        DynamicImage::ImageRgb8(img),
                    );
                }
                Handled::Ignored
            }
            AppEvent::Job(JobEvent::Done { outputs, .. }) => {
                if let Some(path) = outputs.first() {
                    out.push(Action::ShowOutput(path.clone()));
                }
                Handled::Ignored
            }
            _ => Handled::Ignored,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let block = ctx.block(" Preview ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let image_area = self.block_inner(area);
        let label_area = Rect::new(
            inner.x,
            inner.y + image_area.height,
            inner.width,
            inner.height.min(1),
        );
        let message = match (&self.picker, &self.image, &self.encoded) {
            (None, _, _) => Some("previews off (--preview-protocol none)"),
            (_, None, _) => Some("no image yet: queue a job (Ctrl-G)"),
            (_, Some(_), None) => Some("preparing preview…"),
            (_, Some(_), Some((proto, _))) => {
                frame.render_widget(Image::new(proto), image_area);
                None
            }
        };
        if let Some(m) = message {
            frame.render_widget(
                Paragraph::new(m).style(t.muted()).wrap(Wrap { trim: true }),
                inner,
            );
        } else {
            frame.render_widget(
                Paragraph::new(Line::styled(self.label.clone(), t.muted())),
                label_area,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latent_preview_is_encoded_for_the_area() {
        let mut pane = PreviewPane::new(Some(Picker::halfblocks()));
        let mut out = Vec::new();
        pane.handle(
            &AppEvent::Job(JobEvent::Preview {
                job: crate::jobs::JobId(1),
                width: 2,
                height: 2,
                pixels: vec![255; 12],
            }),
            &mut out,
        );
        assert_eq!(pane.label(), "job 1: latent preview");
        pane.prepare(Rect::new(0, 0, 20, 10));
        assert!(pane.encoded.is_some());
        // Garbage sizes are ignored, not a panic.
        pane.handle(
            &AppEvent::Job(JobEvent::Preview {
                job: crate::jobs::JobId(1),
                width: 9,
                height: 9,
                pixels: vec![0; 3],
            }),
            &mut out,
        );
        pane.prepare(Rect::new(0, 0, 1, 1));
    }
}
