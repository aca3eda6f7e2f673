//! The parameters pane's LoRA picker: opened on the loras field (the files are listed off the UI
//! thread), its choice written into the form on Enter.

use crossterm::event::KeyEvent;

use super::super::Action;
use super::super::lora_picker::{LoraOutcome, LoraPicker};
use super::ParamsPane;
use crate::tui::lora_files::LoraFile;

impl ParamsPane {
    pub(super) fn open_loras(&mut self, out: &mut Vec<Action>) {
        let family = self.current_model().and_then(|m| m.family);
        self.loras = Some(LoraPicker::new(self.form.toolkit.loras.clone(), family));
        out.push(Action::ScanLoras);
    }

    /// The LoRA files arrived for the open picker.
    pub fn set_lora_files(&mut self, files: Vec<LoraFile>) {
        if let Some(p) = self.loras.as_mut() {
            p.set_files(files);
        }
    }

    pub(super) fn lora_key(&mut self, key: &KeyEvent, out: &mut Vec<Action>) {
        let Some(picker) = self.loras.as_mut() else {
            return;
        };
        match picker.key(key) {
            LoraOutcome::Open => {}
            LoraOutcome::Cancelled => self.loras = None,
            LoraOutcome::Done(picks) => {
                self.loras = None;
                if picks != self.form.toolkit.loras {
                    self.form.toolkit.loras = picks;
                    self.error = None;
                    out.push(Action::ParamsChanged);
                }
            }
        }
    }
}
