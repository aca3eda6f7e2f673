//! Dispatch: events go to the focused pane first; what no pane consumes is a global key. Panes'
//! `Action`s become `Command`s for the loop.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};

use super::assist::AssistKind;
use super::{App, Command, Overlay, QuitMode};
use crate::jobs::JobEvent;
use crate::tui::event::{AppEvent, SignalKind};
use crate::tui::help;
use crate::tui::hosts::HostsKey;
use crate::tui::layout;
use crate::tui::panes::preview::{OutputKind, output_kind};
use crate::tui::panes::{Action, Handled, Pane, PaneId, ellipsize};
use crate::vocab::JobKind;

impl App {
    pub fn handle(&mut self, event: AppEvent) -> Vec<Command> {
        let mut actions = Vec::new();
        let mut commands = Vec::new();
        match &event {
            AppEvent::Input(Event::Resize(w, h)) => self.set_size(*w, *h),
            AppEvent::Input(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                self.on_key(key, &event, &mut actions, &mut commands);
            }
            AppEvent::Input(Event::Mouse(m)) => {
                if let Some(areas) = layout::areas(self.size)
                    && let Some(id) = areas.hit(m.column, m.row)
                {
                    match m.kind {
                        MouseEventKind::Down(MouseButton::Left) => self.set_focus(id),
                        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                            self.pane(id).handle(&event, &mut actions);
                        }
                        _ => {}
                    }
                }
            }
            AppEvent::Input(Event::Paste(_)) if self.overlay == Overlay::None => {
                self.pane(self.focus).handle(&event, &mut actions);
            }
            AppEvent::Job(job_event) => {
                for id in [PaneId::Queue, PaneId::Gauges, PaneId::Preview] {
                    self.pane(id).handle(&event, &mut actions);
                }
                match job_event {
                    JobEvent::Failed { job, error } => {
                        self.notice = Some(format!("job {job} failed: {}", ellipsize(error, 80)))
                    }
                    JobEvent::Done { job, .. } => self.notice = Some(format!("job {job} done")),
                    _ => {}
                }
                self.assist_event(job_event);
            }
            AppEvent::System(_) => {
                self.gauges.handle(&event, &mut actions);
            }
            AppEvent::Signal(SignalKind::Terminate) => {
                commands.push(Command::Quit(QuitMode::StopJobs))
            }
            AppEvent::Signal(SignalKind::Hangup) => {
                commands.push(Command::Quit(QuitMode::KeepJobs))
            }
            AppEvent::History(h) => self.prompt.set_history(h.clone()),
            AppEvent::Notice(n) => self.notice = Some(n.clone()),
            AppEvent::Rejected(n) => {
                self.notice = Some(n.clone());
                self.assist_rejected();
            }
            AppEvent::LoraFiles(files) => self.params.set_lora_files(files.clone()),
            AppEvent::Waveform(wave) => self.preview.set_waveform((**wave).clone()),
            AppEvent::Video(clip) => self.preview.set_video((**clip).clone()),
            AppEvent::TextFile { label, text } => {
                self.preview.set_text(label.clone(), text.clone(), None)
            }
            AppEvent::Submitted { job, spec } => self.job_submitted(*job, spec),
            AppEvent::Image { label, image } => self.show_image(label.clone(), (**image).clone()),
            AppEvent::Plan { generation, status } => self.plan_arrived(*generation, status.clone()),
            AppEvent::ModelKind {
                model,
                kind,
                family,
            } => commands.extend(self.model_kind_known(model, (*kind, *family))),
            AppEvent::Tick | AppEvent::Input(_) => {}
        }
        for action in actions {
            self.apply(action, &mut commands);
        }
        if let Some(Command::Quit(mode)) = commands.iter().find(|c| matches!(c, Command::Quit(_))) {
            self.quit = Some(*mode);
        }
        commands
    }

    fn on_key(
        &mut self,
        key: &KeyEvent,
        event: &AppEvent,
        actions: &mut Vec<Action>,
        commands: &mut Vec<Command>,
    ) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match self.overlay {
            Overlay::Help => return self.help_key(key),
            Overlay::ConfirmQuit => {
                match key.code {
                    KeyCode::Char('c' | 'y') => commands.push(Command::Quit(QuitMode::CancelJobs)),
                    KeyCode::Char('k') => commands.push(Command::Quit(QuitMode::KeepJobs)),
                    KeyCode::Esc | KeyCode::Char('n') => self.overlay = Overlay::None,
                    _ => {}
                }
                return;
            }
            Overlay::Hosts => return self.hosts_key(key.code, commands),
            Overlay::None => {}
        }
        match key.code {
            KeyCode::Char('c' | 'q') if ctrl => return self.request_quit(commands),
            KeyCode::Char('g') if ctrl => return actions.push(Action::Submit),
            KeyCode::Char('e') if ctrl => return self.start_assist(AssistKind::Enhance, commands),
            KeyCode::Char('p') if ctrl => return self.start_assist(AssistKind::Caption, commands),
            KeyCode::F(5) => return actions.push(Action::Submit),
            _ => {}
        }
        if layout::too_small(self.size) {
            if key.code == KeyCode::Char('q') {
                self.request_quit(commands);
            }
            return;
        }
        if key.code == KeyCode::F(1) {
            return self.open_help();
        }
        if key.code == KeyCode::F(2) {
            self.hosts.open();
            self.overlay = Overlay::Hosts;
            return;
        }
        if self.pane(self.focus).handle(event, actions) == Handled::Consumed {
            return;
        }
        match key.code {
            KeyCode::Tab => self.set_focus(self.focus.next(true)),
            KeyCode::BackTab => self.set_focus(self.focus.next(false)),
            KeyCode::Char('?') => self.open_help(),
            KeyCode::Char('q') => self.request_quit(commands),
            // No text field or dialog took it: Esc stops the running job (README, `?`).
            KeyCode::Esc => self.cancel_running(actions),
            _ => {}
        }
    }

    fn open_help(&mut self) {
        self.overlay = Overlay::Help;
        self.help_scroll = 0;
    }

    /// Keys while the help is open: scroll it, or close it.
    fn help_key(&mut self, key: &KeyEvent) {
        let max = help::layout(self.size).scroll_max;
        let page = help::layout(self.size).rect.height.saturating_sub(3).max(1);
        let s = self.help_scroll;
        self.help_scroll = match key.code {
            KeyCode::Up | KeyCode::Char('k') => s.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => s.saturating_add(1),
            KeyCode::PageUp => s.saturating_sub(page),
            KeyCode::PageDown | KeyCode::Char(' ') => s.saturating_add(page),
            KeyCode::Home => 0,
            KeyCode::End => max,
            _ => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::Enter | KeyCode::F(1)
                ) {
                    self.overlay = Overlay::None;
                }
                s
            }
        }
        .min(max);
    }

    /// Keys while the hosts view is open. Leaving this machine's runner while it has jobs
    /// would stop them, so that waits until they end or are cancelled.
    fn hosts_key(&mut self, code: KeyCode, commands: &mut Vec<Command>) {
        match self.hosts.key(code) {
            HostsKey::Stay => {}
            HostsKey::Close => self.overlay = Overlay::None,
            HostsKey::Switch(_) if self.hosts.is_local() && self.queue.active() > 0 => {
                self.notice = Some(format!(
                    "{} job(s) queued or running here: let them finish or cancel them, then \
                     switch hosts",
                    self.queue.active()
                ));
                self.overlay = Overlay::None;
            }
            HostsKey::Switch(index) => commands.push(Command::Quit(QuitMode::Switch(index))),
        }
    }

    /// Esc outside a text field: cancel the running job, if one runs.
    fn cancel_running(&mut self, actions: &mut Vec<Action>) {
        match self.queue.running() {
            Some(id) => {
                self.notice = Some(format!("cancelling job {id} (Esc)"));
                actions.push(Action::Cancel(id));
            }
            None => self.notice = Some("no job is running (Esc cancels the running job)".into()),
        }
    }

    fn request_quit(&mut self, commands: &mut Vec<Command>) {
        if self.queue.active() > 0 {
            self.overlay = Overlay::ConfirmQuit;
        } else {
            commands.push(Command::Quit(QuitMode::CancelJobs));
        }
    }

    fn apply(&mut self, action: Action, commands: &mut Vec<Command>) {
        match action {
            Action::Submit => self.submit(commands),
            Action::Cancel(id) => commands.push(Command::Cancel(id)),
            Action::Retry(id) => commands.push(Command::Retry(id)),
            Action::Move { job, index } => commands.push(Command::Move { job, index }),
            Action::TogglePause => {
                self.paused ^= true;
                self.queue.set_paused(self.paused);
                commands.push(Command::SetPaused(self.paused));
            }
            Action::ParamsChanged => commands.extend(self.request_plan()),
            Action::ShowOutput(path) => commands.push(match output_kind(&path) {
                OutputKind::Image => Command::LoadImage(path),
                OutputKind::Audio => Command::LoadAudio(path),
                OutputKind::Text => Command::LoadText(path),
                OutputKind::Video => Command::LoadVideo(path),
            }),
            Action::CancelAssist => self.cancel_assist(commands),
            Action::ScanLoras => commands.push(Command::ScanLoras),
            Action::PreviewControl { path, canny } => {
                commands.push(Command::LoadControl { path, canny })
            }
            Action::Notice(n) => self.notice = Some(n),
        }
    }

    fn submit(&mut self, commands: &mut Vec<Command>) {
        let prompt = self.prompt.prompt();
        let mut spec = match self.params.form().to_overrides() {
            Ok(spec) => spec,
            Err(e) => {
                self.notice = Some(e);
                return;
            }
        };
        // Transcription and captioning read a file, not the prompt.
        let kind = spec.kind_asked();
        let uses_prompt = !matches!(kind, JobKind::Stt | JobKind::Caption);
        let missing = match kind {
            _ if uses_prompt && prompt.trim().is_empty() => Some(match kind {
                JobKind::Tts => "type the text to speak first",
                JobKind::Music => "describe the music in the prompt first",
                JobKind::Enhance => "type an idea to enhance first",
                _ => "type a prompt first",
            }),
            JobKind::Stt if spec.audio.is_none() => {
                Some("choose an audio file first (Parameters → audio, Tab completes)")
            }
            JobKind::Caption if spec.caption.is_none() => {
                Some("choose an image to caption first (Parameters → image, Tab completes)")
            }
            _ => None,
        };
        if let Some(m) = missing {
            self.notice = Some(m.into());
            return;
        }
        if spec.model.is_none() {
            self.notice = Some("choose a model first (Parameters → model, Enter)".into());
            return;
        }
        if let Some(f) = self
            .compat
            .findings()
            .iter()
            .find(|f| f.severity == crate::models::Severity::Error)
        {
            self.notice = Some(format!("not queued: {} ({})", f.message, f.fix));
            return;
        }
        if uses_prompt {
            spec.prompt = Some(prompt.clone());
            let history = self.prompt.remember(&prompt).to_vec();
            commands.push(Command::SaveHistory(history));
        }
        if kind.makes_images() {
            spec.negative = Some(self.prompt.negative());
        }
        commands.push(Command::Submit(Box::new(spec)));
        self.notice = None;
    }
}
