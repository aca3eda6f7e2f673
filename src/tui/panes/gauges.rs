//! Device and memory gauges: a pure widget over the latest `SysSnapshot`, plus the running job's peak.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};

use super::{Action, DrawCtx, Handled, Pane};
use crate::device::memory::format_bytes_compact as bytes;
use crate::jobs::{JobEvent, JobId};
use crate::tui::event::AppEvent;
use crate::tui::sampler::{DeviceGauge, SysSnapshot};

#[derive(Debug, Default)]
pub struct GaugesPane {
    snapshot: Option<SysSnapshot>,
    /// The job whose peak we track, and its peak process memory so far.
    peak: Option<(JobId, u64)>,
    /// The last finished job's peak as the runner measured it.
    last_peak: Option<(JobId, u64)>,
}

impl GaugesPane {
    pub fn snapshot(&self) -> Option<&SysSnapshot> {
        self.snapshot.as_ref()
    }

    pub fn set_snapshot(&mut self, snapshot: SysSnapshot) {
        if let (Some((_, peak)), Some(rss)) = (self.peak.as_mut(), snapshot.process_rss) {
            *peak = (*peak).max(rss);
        }
        self.snapshot = Some(snapshot);
    }

    fn on_job(&mut self, event: &JobEvent) {
        match event {
            JobEvent::Loading { job, .. } | JobEvent::Progress { job, .. }
                if self.peak.is_none_or(|(j, _)| j != *job) =>
            {
                let rss = self
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.process_rss)
                    .unwrap_or(0);
                self.peak = Some((*job, rss));
            }
            JobEvent::Done {
                job, peak_bytes, ..
            } => {
                let ours = self.peak.filter(|(j, _)| j == job).map(|(_, p)| p);
                self.last_peak = peak_bytes.or(ours).map(|p| (*job, p));
                self.peak = None;
            }
            JobEvent::Failed { job, .. } | JobEvent::Cancelled { job } => {
                if let Some((j, p)) = self.peak.filter(|(j, _)| j == job) {
                    self.last_peak = Some((j, p));
                    self.peak = None;
                }
            }
            _ => {}
        }
    }
}

fn ratio(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (used as f64 / total as f64).clamp(0.0, 1.0)
    }
}

fn gauge<'a>(ctx: &DrawCtx, label: &'a str, used: u64, total: u64, text: String) -> LineGauge<'a> {
    let t = ctx.theme;
    let r = ratio(used, total);
    let fill = if r > 0.9 { t.gauge_high } else { t.gauge_fill };
    LineGauge::default()
        .ratio(r)
        .label(Line::from(vec![
            Span::styled(format!("{label:<6}"), t.muted()),
            Span::styled(text, t.text()),
        ]))
        .filled_style(Style::new().fg(fill))
        .unfilled_style(Style::new().fg(t.gauge_empty))
}

impl Pane for GaugesPane {
    fn handle(&mut self, event: &AppEvent, _out: &mut Vec<Action>) -> Handled {
        match event {
            AppEvent::System(s) => {
                self.set_snapshot(s.clone());
                Handled::Consumed
            }
            AppEvent::Job(e) => {
                self.on_job(e);
                Handled::Ignored
            }
            _ => Handled::Ignored,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let block = ctx.block(" System ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some(s) = &self.snapshot else {
            frame.render_widget(Paragraph::new("sampling…").style(ctx.theme.muted()), inner);
            return;
        };
        let rows = Layout::vertical([Constraint::Length(1); 5]).split(inner);
        frame.render_widget(
            gauge(
                ctx,
                "RAM",
                s.ram_used,
                s.ram_total,
                format!("{} / {} ", bytes(s.ram_used), bytes(s.ram_total)),
            ),
            rows[0],
        );
        let swap = if s.swap_total == 0 {
            "none ".to_owned()
        } else {
            format!("{} / {} ", bytes(s.swap_used), bytes(s.swap_total))
        };
        frame.render_widget(gauge(ctx, "Swap", s.swap_used, s.swap_total, swap), rows[1]);
        let rss = s.process_rss.unwrap_or(0);
        let peak = match (self.peak, self.last_peak) {
            (Some((job, p)), _) => format!(" peak#{job} {}", bytes(p)),
            (None, Some((job, p))) => format!(" last#{job} {}", bytes(p)),
            (None, None) => String::new(),
        };
        frame.render_widget(
            gauge(
                ctx,
                "Proc",
                rss,
                s.ram_total,
                format!("{}{peak} ", bytes(rss)),
            ),
            rows[2],
        );
        let device = match &s.device {
            Some(DeviceGauge::Discrete { name, total, free }) => {
                let used = total.saturating_sub(*free);
                gauge(
                    ctx,
                    "GPU",
                    used,
                    *total,
                    format!("{} / {} {name} ", bytes(used), bytes(*total)),
                )
            }
            Some(DeviceGauge::Unified {
                name,
                total,
                budget,
                used,
            }) => gauge(
                ctx,
                "Unif",
                *used,
                *budget,
                format!(
                    "{} / {} budget ({} total) {name} ",
                    bytes(*used),
                    bytes(*budget),
                    bytes(*total)
                ),
            ),
            None => gauge(ctx, "Dev", 0, 0, "CPU only: RAM above ".to_owned()),
        };
        frame.render_widget(device, rows[3]);
        let cpu = f64::from(s.cpu_percent);
        frame.render_widget(
            gauge(ctx, "CPU", (cpu * 10.0) as u64, 1000, format!("{cpu:.0}% ")),
            rows[4],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_follows_the_running_job() {
        let mut pane = GaugesPane::default();
        let snap = |rss| SysSnapshot {
            process_rss: Some(rss),
            ..SysSnapshot::default()
        };
        pane.set_snapshot(snap(100));
        pane.on_job(&JobEvent::Loading {
            job: JobId(1),
            stage: "unet".into(),
        });
        pane.set_snapshot(snap(500));
        pane.set_snapshot(snap(300));
        assert_eq!(pane.peak, Some((JobId(1), 500)));
        pane.on_job(&JobEvent::Failed {
            job: JobId(1),
            error: "x".into(),
        });
        assert_eq!((pane.peak, pane.last_peak), (None, Some((JobId(1), 500))));
    }
}
