//! Preview: the live latent preview while a job runs, else the latest output: an image, an audio
//! clip's waveform, a video clip (played, `preview/video.rs`), or a text (streamed while its job
//! runs). The image is encoded for the
//! terminal's protocol in `prepare` (before drawing, when the image or the area changed), and a
//! waveform is read from its file on a blocking thread, so drawing only copies cells.

use std::num::NonZeroU16;
use std::path::{Path, PathBuf};

use crossterm::event::{Event, MouseEventKind};
use image::{DynamicImage, RgbImage};
use ratatui::Frame;
use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Sparkline, Wrap};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

use super::text_view::TextView;
use super::{Action, DrawCtx, Handled, Pane, ellipsize};
use crate::jobs::{JobEvent, JobId};
use crate::tui::event::AppEvent;
use crate::tui::preview::video::Player;
use crate::tui::preview::waveform::{self, Waveform};

/// What the pane shows.
#[derive(Debug, Default)]
enum Shown {
    /// `image` (none yet when empty).
    #[default]
    Image,
    Audio(Waveform),
    Text(TextView),
    Video(Box<Player>),
}

#[derive(Default)]
pub struct PreviewPane {
    picker: Option<Picker>,
    label: String,
    image: Option<DynamicImage>,
    /// The encoded image and the area it was encoded for.
    encoded: Option<(Protocol, Rect)>,
    shown: Shown,
    /// A clip's frames encoded for the area (`preview_video.rs`).
    frames: video::FrameCache,
}

/// The output of a job worth showing: a text beats an .srt (the same words without timings),
/// anything else comes in the order the job wrote it.
pub fn primary_output(outputs: &[PathBuf]) -> Option<&PathBuf> {
    let ext = |p: &PathBuf, e: &str| p.extension().is_some_and(|x| x.eq_ignore_ascii_case(e));
    outputs
        .iter()
        .find(|p| ext(p, "txt"))
        .or_else(|| outputs.iter().find(|p| !ext(p, "json")))
}

/// How an output file is shown, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Image,
    Audio,
    Text,
    Video,
}

pub fn output_kind(path: &Path) -> OutputKind {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "wav" | "flac" | "mp3" | "ogg" => OutputKind::Audio,
        "txt" | "srt" | "vtt" | "md" => OutputKind::Text,
        "mp4" | "m4v" | "mov" => OutputKind::Video,
        _ => OutputKind::Image,
    }
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
        self.shown = Shown::Image;
    }

    /// An audio output, read off the drawing path (`waveform::read_wav`).
    pub fn set_waveform(&mut self, wave: Waveform) {
        self.label = wave.label.clone();
        self.shown = Shown::Audio(wave);
    }

    /// A finished text (a job's `Done.text` or a .txt output).
    pub fn set_text(&mut self, label: String, text: String, job: Option<JobId>) {
        self.label = label.clone();
        self.shown = Shown::Text(TextView::new(label, text, job, false));
    }

    /// The text shown, if a text is shown.
    pub fn text(&self) -> Option<&str> {
        match &self.shown {
            Shown::Text(v) => Some(&v.text),
            _ => None,
        }
    }

    /// Streamed text of `job`: appended to its view, or a new view for a new job.
    fn stream(&mut self, job: JobId, delta: &str) {
        match &mut self.shown {
            Shown::Text(v) if v.job == Some(job) => v.push(delta),
            _ => {
                let label = format!("job {job}: text");
                self.label = label.clone();
                self.shown = Shown::Text(TextView::new(label, delta.to_owned(), Some(job), true));
            }
        }
    }

    /// The job's stream ended (done, failed or cancelled).
    fn stream_ended(&mut self, job: JobId) {
        if let Shown::Text(v) = &mut self.shown
            && v.job == Some(job)
        {
            v.streaming = false;
        }
    }

    fn text_view(&mut self) -> Option<&mut TextView> {
        match &mut self.shown {
            Shown::Text(v) => Some(v),
            _ => None,
        }
    }

    /// Encodes the image for `area` (the pane's outer area) if that is not done yet.
    pub fn prepare(&mut self, area: Rect) {
        let inner = self.block_inner(area);
        if matches!(self.shown, Shown::Video(_)) {
            return self.prepare_video(inner);
        }
        let (Shown::Image, Some(picker), Some(image)) = (&self.shown, &self.picker, &self.image)
        else {
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
            AppEvent::Job(JobEvent::Text { job, delta }) => {
                self.stream(*job, delta);
                Handled::Ignored
            }
            AppEvent::Job(JobEvent::Done {
                job, outputs, text, ..
            }) => {
                self.stream_ended(*job);
                match text {
                    // The whole text came with the event: no file to read.
                    Some(text) => {
                        let label = primary_output(outputs)
                            .map_or_else(|| format!("job {job}: text"), |p| file_name(p));
                        self.set_text(label, text.clone(), Some(*job));
                    }
                    None => {
                        if let Some(path) = primary_output(outputs) {
                            out.push(Action::ShowOutput(path.clone()));
                        }
                    }
                }
                Handled::Ignored
            }
            AppEvent::Job(JobEvent::Failed { job, .. } | JobEvent::Cancelled { job }) => {
                self.stream_ended(*job);
                Handled::Ignored
            }
            AppEvent::Input(Event::Key(key)) => {
                if let Shown::Video(player) = &mut self.shown {
                    return video::key(player, key);
                }
                let page = 10;
                match self.text_view().map(|v| v.key(key, page)) {
                    Some(true) => Handled::Consumed,
                    _ => Handled::Ignored,
                }
            }
            AppEvent::Input(Event::Mouse(m)) => {
                let down = match m.kind {
                    MouseEventKind::ScrollDown => true,
                    MouseEventKind::ScrollUp => false,
                    _ => return Handled::Ignored,
                };
                match self.text_view() {
                    Some(v) => {
                        v.scroll(down);
                        Handled::Consumed
                    }
                    None => Handled::Ignored,
                }
            }
            _ => Handled::Ignored,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let block = ctx.block(" Preview ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        match &self.shown {
            Shown::Image => {}
            Shown::Audio(wave) => return draw_waveform(frame, inner, wave, ctx),
            Shown::Text(view) => return view.draw(frame, inner, ctx),
            Shown::Video(player) => return self.draw_video(frame, area, player, ctx),
        }
        let image_area = self.block_inner(area);
        let label_area = label_row(inner, image_area);
        let message = match (&self.picker, &self.image, &self.encoded) {
            (None, _, _) => Some("previews off (--preview-protocol none)"),
            (_, None, _) => Some("no image yet: queue a job (Ctrl-G)"),
            (_, Some(_), None) => Some("preparing preview…"),
            (_, Some(_), Some((proto, _))) => {
                frame.render_widget(Image::new(proto), image_area);
                pin_escape_cells(frame.buffer_mut(), image_area);
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

/// An image protocol (sixel, kitty, iTerm2) writes its escape sequence into one cell. ratatui
/// would count that sequence's printable characters as the cell's width and then skip updating
/// as many cells after it: the rest of the row and rows below kept stale text (the placeholder's
/// tail beside the image, a finished job's old progress in the queue). Such cells are one column.
fn pin_escape_cells(buf: &mut Buffer, area: Rect) {
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if let Some(cell) = buf.cell_mut((x, y))
                && cell.symbol().starts_with('\x1b')
            {
                cell.set_diff_option(CellDiffOption::ForcedWidth(NonZeroU16::MIN));
            }
        }
    }
}

/// The label's row under the image (inside the block).
fn label_row(inner: Rect, image_area: Rect) -> Rect {
    Rect::new(
        inner.x,
        inner.y + image_area.height,
        inner.width,
        inner.height.min(1),
    )
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The waveform as a sparkline of per-column peaks, then "3.2 s · 32 kHz · mono" and the file.
fn draw_waveform(frame: &mut Frame, area: Rect, wave: &Waveform, ctx: &DrawCtx) {
    let t = ctx.theme;
    let info_h = area.height.min(2);
    let wave_h = area.height - info_h;
    let width = usize::from(area.width);
    if wave_h > 0 {
        // Bars out of 1000, scaled to the clip's own loudest peak so a quiet clip still shows its
        // shape (the info line says how loud it is); near-silence is not blown up to full height.
        let top = wave.peak().max(waveform::SILENCE);
        let bars: Vec<u64> = waveform::fit(&wave.peaks, width)
            .iter()
            .map(|p| (p / top * 1000.0).round().min(1000.0) as u64)
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(bars)
                .max(1000)
                .style(Style::new().fg(t.accent)),
            Rect::new(area.x, area.y, area.width, wave_h),
        );
    }
    let lines = [
        Line::styled(ellipsize(&wave.info(), width), t.text()),
        Line::styled(ellipsize(&wave.label, width), t.muted()),
    ];
    for (i, line) in lines.into_iter().take(usize::from(info_h)).enumerate() {
        frame.render_widget(
            Paragraph::new(line),
            Rect::new(area.x, area.y + wave_h + i as u16, area.width, 1),
        );
    }
}

#[path = "preview_video.rs"]
mod video;

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
