//! Prompt helpers: Ctrl-E rewrites the prompt with the registry's text model (an Enhance job),
//! Ctrl-P captions the parameters' init image into it (a Caption job). Both are ordinary queued
//! jobs; the app remembers which one is the helper, streams its text into the prompt pane, and on
//! Done puts the text into the prompt as one undo step.

use super::{App, Command};
use crate::jobs::spec::JobOverrides;
use crate::jobs::{JobEvent, JobId, JobSpec};
use crate::models::Kind;
use crate::vocab::{DtypeChoice, JobKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistKind {
    Enhance,
    Caption,
}

impl AssistKind {
    fn job_kind(self) -> JobKind {
        match self {
            Self::Enhance => JobKind::Enhance,
            Self::Caption => JobKind::Caption,
        }
    }

    fn model_kind(self) -> Kind {
        Kind::for_job(self.job_kind())
    }

    /// "enhancing", shown in the prompt pane while it runs.
    fn doing(self) -> &'static str {
        match self {
            Self::Enhance => "enhancing",
            Self::Caption => "captioning",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Enhance => "enhance",
            Self::Caption => "caption",
        }
    }
}

/// Events kept while the helper's job id is not known yet.
const EARLY_LIMIT: usize = 4096;

#[derive(Debug)]
pub(super) struct Assist {
    kind: AssistKind,
    /// Known once the runner accepted the job.
    job: Option<JobId>,
    /// Events that arrived before the job id did (a tiny model can finish before the runner's
    /// answer to the submission reaches the loop).
    early: Vec<JobEvent>,
    /// Streamed text: the result when `Done` carries none.
    text: String,
}

impl App {
    /// The helper's model: --enhancer for enhancing, the form's own model when it is of that
    /// kind, else the default enhancer (as headless) or the registry's first of that kind.
    fn assist_model(&self, kind: Kind) -> Option<String> {
        let form = self.params.form();
        if kind == Kind::Text
            && let Some(enhancer) = form.base.enhancer.as_deref().map(str::trim)
            && !enhancer.is_empty()
        {
            return Some(enhancer.to_owned());
        }
        if form.kind == Some(kind) && !form.model.trim().is_empty() {
            return Some(form.model.trim().to_owned());
        }
        // The same default enhancer as --headless (one constant, in media_spec).
        let default = crate::jobs::spec::media::DEFAULT_ENHANCER;
        if kind == Kind::Text && self.compat_env.entries.iter().any(|e| e.id == default) {
            return Some(default.to_owned());
        }
        self.compat_env
            .entries
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| e.id.clone())
    }

    /// Ctrl-E / Ctrl-P: queues the helper job, or says why it cannot.
    pub(super) fn start_assist(&mut self, kind: AssistKind, commands: &mut Vec<Command>) {
        if let Some(a) = &self.assist {
            self.notice = Some(format!(
                "already {} the prompt: wait for it, or Esc in the prompt pane to cancel",
                a.kind.doing()
            ));
            return;
        }
        let Some(model) = self.assist_model(kind.model_kind()) else {
            self.notice = Some(match kind {
                AssistKind::Enhance => "no prompt enhancer: the model list has no model of kind \
                                        \"text\" (add one to models.toml, e.g. qwen2.5-0.5b-instruct)"
                    .into(),
                AssistKind::Caption => "no captioner: the model list has no model of kind \
                                        \"caption\" (add one to models.toml, e.g. blip-base)"
                    .into(),
            });
            return;
        };
        let form = self.params.form();
        let mut spec = JobOverrides {
            kind: Some(kind.job_kind()),
            model: Some(model),
            dtype: (form.dtype != DtypeChoice::Auto).then_some(form.dtype),
            max_tokens: form.base.max_tokens,
            seed: form.to_overrides().ok().and_then(|s| s.seed),
            ..JobOverrides::default()
        };
        match kind {
            AssistKind::Enhance => {
                let idea = self.prompt.prompt();
                if idea.trim().is_empty() {
                    self.notice = Some("type an idea to enhance first".into());
                    return;
                }
                spec.prompt = Some(idea);
            }
            AssistKind::Caption => {
                let image = self.params.init_image();
                if image.is_empty() {
                    self.notice = Some(
                        "no init image to caption: set Parameters → init image first \
                         (Tab completes paths)"
                            .into(),
                    );
                    return;
                }
                spec.caption = Some(image.into());
            }
        }
        let model = spec.model.clone().unwrap_or_default();
        self.notice = Some(format!("{} the prompt with {model}…", kind.doing()));
        self.prompt.begin_assist(kind.noun());
        self.assist = Some(Assist {
            kind,
            job: None,
            early: Vec::new(),
            text: String::new(),
        });
        commands.push(Command::Submit(Box::new(spec)));
    }

    /// The runner accepted a job; if it is the helper's, the events that came early replay.
    pub(super) fn assist_submitted(&mut self, id: JobId, spec: &JobSpec) {
        let Some(a) = self.assist.as_mut() else {
            return;
        };
        if a.job.is_some() || spec.kind != a.kind.job_kind() {
            return;
        }
        a.job = Some(id);
        let early = std::mem::take(&mut a.early);
        for e in early.iter().filter(|e| e.job() == id) {
            self.assist_event(e);
        }
    }

    /// The submission was refused: nothing will answer, so the helper stops waiting.
    pub(super) fn assist_rejected(&mut self) {
        if self.assist.as_ref().is_some_and(|a| a.job.is_none()) {
            self.assist = None;
            self.prompt.end_assist();
        }
    }

    /// A job event: the helper's text streams into the prompt pane; its end fills the prompt.
    pub(super) fn assist_event(&mut self, event: &JobEvent) {
        let Some(a) = self.assist.as_mut() else {
            return;
        };
        match a.job {
            None => {
                let relevant = matches!(
                    event,
                    JobEvent::Text { .. }
                        | JobEvent::Done { .. }
                        | JobEvent::Failed { .. }
                        | JobEvent::Cancelled { .. }
                );
                if relevant && a.early.len() < EARLY_LIMIT {
                    a.early.push(event.clone());
                }
                return;
            }
            Some(id) if id != event.job() => return,
            Some(_) => {}
        }
        let kind = a.kind;
        let outcome = match event {
            JobEvent::Text { delta, .. } => {
                a.text.push_str(delta);
                self.prompt.assist_push(delta);
                return;
            }
            JobEvent::Done { text, .. } => {
                let result = text.clone().unwrap_or_else(|| a.text.clone());
                let result = result.trim();
                if result.is_empty() {
                    format!(
                        "the {} job returned no text; the prompt is unchanged",
                        kind.noun()
                    )
                } else {
                    self.prompt.replace_prompt(result);
                    match kind {
                        AssistKind::Enhance => {
                            "prompt enhanced (Ctrl-Z in the prompt brings the idea back)".into()
                        }
                        AssistKind::Caption => {
                            "caption in the prompt (Ctrl-Z in the prompt undoes it)".into()
                        }
                    }
                }
            }
            JobEvent::Failed { error, .. } => format!(
                "{} failed: {} (the prompt is unchanged)",
                kind.noun(),
                crate::tui::panes::ellipsize(error, 80)
            ),
            JobEvent::Cancelled { .. } => {
                format!("{} cancelled; the prompt is unchanged", kind.noun())
            }
            _ => return,
        };
        self.assist = None;
        self.prompt.end_assist();
        self.notice = Some(outcome);
    }

    /// Esc in the prompt pane while the helper runs: cancel its job (or, before the runner has
    /// answered, stop waiting for it; its result is then ignored).
    pub(super) fn cancel_assist(&mut self, commands: &mut Vec<Command>) {
        match self.assist.as_ref().and_then(|a| a.job) {
            Some(id) => commands.push(Command::Cancel(id)),
            None => {
                self.assist = None;
                self.prompt.end_assist();
                self.notice = Some("stopped waiting; the prompt is unchanged".into());
            }
        }
    }

    /// The helper running, if any: its kind and job.
    pub fn assisting(&self) -> Option<(AssistKind, Option<JobId>)> {
        self.assist.as_ref().map(|a| (a.kind, a.job))
    }
}
