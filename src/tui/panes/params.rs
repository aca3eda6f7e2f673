//! Parameters: a form of fields (Up/Down select, Enter edits, Esc leaves, Left/Right cycle or nudge)
//! and a model picker searched by name with each model's compatibility verdict as a badge.

use crossterm::event::{Event, KeyCode, KeyEvent, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph};

use super::form::{Form, ModelChoice, ParamField};
use super::model_picker::{ModelPicker, PickerOutcome, badge};
use super::presets::complete_path;
use super::{Action, DrawCtx, Handled, Pane, ellipsize};
use crate::models::Verdict;
use crate::tui::event::AppEvent;
use crate::vocab::DtypeChoice;

#[derive(Debug, Default)]
pub struct ParamsPane {
    form: Form,
    models: Vec<ModelChoice>,
    selected: usize,
    /// The text being typed into the selected field.
    editing: Option<String>,
    picker: Option<ModelPicker>,
    /// The LoRA picker, while open.
    loras: Option<super::lora_picker::LoraPicker>,
    error: Option<String>,
}

/// Why the device field does not edit: jobs carry no device, the runner has one for the session.
const DEVICE_FIXED: &str = "device is fixed at start: restart with --device";

impl ParamsPane {
    pub fn new(mut form: Form, models: Vec<ModelChoice>) -> Self {
        let chosen = models.iter().find(|m| m.id == form.model);
        if form.kind.is_none() {
            form.kind = chosen.map(|m| m.kind);
        }
        form.family = chosen.and_then(|m| m.family);
        Self {
            form,
            models,
            ..Self::default()
        }
    }

    /// What the model makes, learnt after the form was built (a folder model): its fields show.
    pub fn set_kind(&mut self, kind: crate::models::Kind, family: crate::models::Family) {
        self.form.kind = Some(kind);
        self.form.family = Some(family);
        self.selected = self.selected.min(self.last_field());
        self.editing = None;
    }

    /// The init image as typed (a caption job's input).
    pub fn init_image(&self) -> &str {
        self.form.init_image.trim()
    }

    pub fn form(&self) -> &Form {
        &self.form
    }

    pub fn models(&self) -> &[ModelChoice] {
        &self.models
    }

    /// New verdicts after the device or dtype changed.
    pub fn set_verdicts(&mut self, verdicts: impl Fn(&ModelChoice) -> Verdict) {
        for m in &mut self.models {
            m.verdict = verdicts(m);
        }
    }

    pub fn current_model(&self) -> Option<&ModelChoice> {
        self.models.iter().find(|m| m.id == self.form.model)
    }

    fn field(&self) -> ParamField {
        let fields = self.form.fields();
        fields[self.selected.min(fields.len() - 1)]
    }

    fn last_field(&self) -> usize {
        self.form.fields().len() - 1
    }

    fn default_text(&self, field: ParamField) -> String {
        if let Some(text) = field.placeholder(self.form.kind) {
            return text.into();
        }
        let Some(m) = self.current_model() else {
            return "default".into();
        };
        let d = &m.defaults;
        match field {
            ParamField::Steps => d.steps.to_string(),
            ParamField::Guidance => d.guidance.to_string(),
            ParamField::Size => format!("{}x{}", d.width, d.height),
            ParamField::Scheduler => d.scheduler.to_string(),
            ParamField::Batch => "1".into(),
            ParamField::Strength => "0.75".into(),
            ParamField::Seed => "random".into(),
            ParamField::Frames => d.frames.unwrap_or(81).to_string(),
            ParamField::Fps => d.fps.unwrap_or(16).to_string(),
            ParamField::InitImage | ParamField::Mask => "none".into(),
            ParamField::Residency => "auto (the planner chooses)".into(),
            ParamField::Upscaler => format!(
                "{} (the default)",
                crate::jobs::spec::upscale::default_upscaler(self.form.toolkit.upscale)
            ),
            _ => "default".into(),
        }
    }

    fn commit(&mut self, field: ParamField, value: String, out: &mut Vec<Action>) -> bool {
        match self.form.set(field, value) {
            Ok(()) => {
                self.error = None;
                out.push(Action::ParamsChanged);
                if field == ParamField::ControlImage {
                    out.extend(self.preview_control());
                }
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// The control image (or its edges) for the preview pane, once it is set.
    fn preview_control(&self) -> Option<Action> {
        let (path, canny) = self.form.toolkit.control_preview(&self.form.base)?;
        Some(Action::PreviewControl { path, canny })
    }

    fn edit_key(&mut self, key: &KeyEvent, out: &mut Vec<Action>) {
        let field = self.field();
        let Some(buf) = self.editing.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Esc => {
                self.editing = None;
                self.error = None;
            }
            KeyCode::Enter => {
                let value = buf.clone();
                if self.commit(field, value, out) {
                    self.editing = None;
                }
            }
            KeyCode::Tab if field.is_path() => match complete_path(buf) {
                Some(done) => *buf = done,
                None => self.error = Some(format!("{}: nothing matches {buf:?}", field.label())),
            },
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Char(c) => buf.push(c),
            _ => {}
        }
    }

    fn picker_key(&mut self, key: &KeyEvent, out: &mut Vec<Action>) {
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        match picker.key(key, &self.models) {
            PickerOutcome::Open => {}
            PickerOutcome::Closed => self.picker = None,
            PickerOutcome::Chosen(id) => {
                let chosen = self.models.iter().find(|m| m.id == id);
                self.form.kind = chosen.map(|m| m.kind);
                self.form.family = chosen.and_then(|m| m.family);
                self.form.model = id;
                // A new model's own defaults apply unless the user sets them again.
                self.form.size.clear();
                self.form.scheduler.clear();
                // The field list follows the kind; keep the selection on the model row.
                self.selected = 0;
                out.push(Action::ParamsChanged);
                self.picker = None;
            }
        }
    }
}

impl Pane for ParamsPane {
    fn handle(&mut self, event: &AppEvent, out: &mut Vec<Action>) -> Handled {
        let key = match event {
            AppEvent::Input(Event::Paste(text)) if self.editing.is_some() => {
                if let Some(buf) = self.editing.as_mut() {
                    buf.push_str(text.trim());
                }
                return Handled::Consumed;
            }
            AppEvent::Input(Event::Mouse(m)) => {
                match m.kind {
                    MouseEventKind::ScrollUp => self.selected = self.selected.saturating_sub(1),
                    MouseEventKind::ScrollDown => {
                        self.selected = (self.selected + 1).min(self.last_field())
                    }
                    _ => return Handled::Ignored,
                }
                return Handled::Consumed;
            }
            AppEvent::Input(Event::Key(k)) => k,
            _ => return Handled::Ignored,
        };
        if self.picker.is_some() {
            self.picker_key(key, out);
            return Handled::Consumed;
        }
        if self.loras.is_some() {
            self.lora_key(key, out);
            return Handled::Consumed;
        }
        if self.editing.is_some() {
            self.edit_key(key, out);
            return Handled::Consumed;
        }
        let field = self.field();
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.last_field())
            }
            KeyCode::Left | KeyCode::Char('-') => self.nudge(false, out),
            KeyCode::Right | KeyCode::Char('+') => self.nudge(true, out),
            KeyCode::Char('r') if field == ParamField::Seed => self.nudge(true, out),
            KeyCode::Enter | KeyCode::Char('e') => match field {
                ParamField::Model => self.picker = Some(ModelPicker::default()),
                ParamField::Loras => self.open_loras(out),
                ParamField::Dtype
                | ParamField::Residency
                | ParamField::Translate
                | ParamField::Upscale
                | ParamField::ControlPreprocess => self.nudge(true, out),
                ParamField::Device => self.error = Some(DEVICE_FIXED.into()),
                _ => self.editing = Some(self.form.get(field)),
            },
            KeyCode::Char('/') if field == ParamField::Model => {
                self.picker = Some(ModelPicker::default())
            }
            KeyCode::Backspace | KeyCode::Delete
                if !matches!(field, ParamField::Model | ParamField::Device) =>
            {
                match field {
                    ParamField::Dtype => self.form.dtype = DtypeChoice::Auto,
                    ParamField::Residency => self.form.residency = None,
                    ParamField::Translate => self.form.translate = false,
                    ParamField::Upscale => self.form.toolkit.upscale = None,
                    _ => {}
                }
                self.commit(field, String::new(), out);
            }
            _ => return Handled::Ignored,
        }
        Handled::Consumed
    }

    fn captures_text(&self) -> bool {
        self.editing.is_some() || self.picker.is_some() || self.loras.is_some()
    }

    fn on_focus(&mut self, gained: bool) {
        if !gained {
            self.editing = None;
            self.picker = None;
            self.loras = None;
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let block = ctx.block(" Parameters ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [list_area, err_area] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(u16::from(self.error.is_some())),
        ])
        .areas(inner);
        let label_w = 11usize;
        let value_w = usize::from(list_area.width).saturating_sub(label_w);
        let kind = self.form.kind;
        let items: Vec<ListItem> = self
            .form
            .fields()
            .iter()
            .map(|&f| {
                let label = f.label_for(kind);
                let mut spans = vec![Span::styled(format!("{label:<label_w$}"), t.muted())];
                let typed = self.form.get(f);
                match f {
                    ParamField::Model => {
                        let name = if typed.is_empty() {
                            "(choose: Enter)".to_owned()
                        } else {
                            typed
                        };
                        spans.push(Span::styled(
                            ellipsize(&name, value_w.saturating_sub(8)),
                            t.text(),
                        ));
                        if let Some(m) = self.current_model() {
                            spans.push(Span::raw(" "));
                            spans.push(badge(m.verdict, t));
                        }
                    }
                    ParamField::Device => {
                        spans.push(Span::styled(ellipsize(&typed, value_w), t.text()));
                        spans.push(Span::styled(
                            ellipsize(" (restart to change)", value_w.saturating_sub(typed.len())),
                            t.muted(),
                        ));
                    }
                    ParamField::Translate if self.form.translate => {
                        spans.push(Span::styled("on", Style::new().fg(t.accent)));
                        spans.push(Span::styled(" (into English)", t.muted()));
                    }
                    ParamField::Upscale if self.form.toolkit.upscale.is_some() => {
                        spans.push(Span::styled(typed, Style::new().fg(t.accent)));
                        spans.push(Span::styled(" after the job (←→)", t.muted()));
                    }
                    ParamField::Upscaler if self.form.toolkit.upscale.is_none() => {
                        spans.push(Span::styled("(upscale is off)", t.muted()));
                    }
                    ParamField::Seed if self.form.random_seed => {
                        spans.push(Span::styled("random", Style::new().fg(t.accent)));
                        spans.push(Span::styled(" (r: fixed)", t.muted()));
                    }
                    _ if typed.is_empty()
                        || (f == ParamField::Dtype && self.form.dtype == DtypeChoice::Auto) =>
                    {
                        spans.push(Span::styled(
                            ellipsize(&self.default_text(f), value_w),
                            t.muted(),
                        ));
                    }
                    _ => spans.push(Span::styled(ellipsize(&typed, value_w), t.text())),
                }
                ListItem::new(Line::from(spans))
            })
            .collect();
        let mut state = ListState::default().with_selected(Some(self.selected));
        let highlight = if ctx.focused {
            t.selected()
        } else {
            Style::new()
        };
        frame.render_stateful_widget(
            List::new(items).highlight_style(highlight),
            list_area,
            &mut state,
        );
        if let Some(e) = &self.error {
            frame.render_widget(
                Paragraph::new(Span::styled(e.clone(), Style::new().fg(t.error))),
                err_area,
            );
        }
        // The field being edited: an input line over its row, with the cursor at its end.
        if let Some(buf) = &self.editing {
            let row = self.selected.saturating_sub(state.offset()) as u16;
            if row < list_area.height && value_w > 0 {
                let shown: String = {
                    let n = buf.chars().count();
                    buf.chars().skip((n + 1).saturating_sub(value_w)).collect()
                };
                let r = Rect::new(
                    list_area.x + label_w as u16,
                    list_area.y + row,
                    value_w as u16,
                    1,
                );
                frame.render_widget(Clear, r);
                frame.render_widget(Paragraph::new(shown.clone()).style(t.selected()), r);
                let x = r.x + (shown.chars().count() as u16).min(r.width.saturating_sub(1));
                frame.set_cursor_position(Position::new(x, r.y));
            }
        }
        if let Some(p) = &self.picker {
            p.draw(frame, inner, &self.models, ctx);
        }
        if let Some(p) = &self.loras {
            p.draw(frame, area, ctx);
        }
    }
}

#[path = "params_loras.rs"]
mod loras;
#[path = "params_nudge.rs"]
mod nudge;
