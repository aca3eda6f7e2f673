//! What a job's LoRAs add to its plan: the bytes they keep for the job's life (their factors in
//! f32, which the engine keeps to merge again when a component reloads, in the memory the budget
//! counts on the CPU and unified memory; the side branches' weights beside a GGUF transformer's
//! layers, on the device) and the temporary of merging at load (one changed weight's change and
//! merged copy in f32 at a time).

use serde::Serialize;

use super::PlanStep;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LoraBytes {
    /// Held in every stage.
    pub resident_bytes: u64,
    /// Held while a component loads (merging).
    pub merge_bytes: u64,
}

impl LoraBytes {
    pub fn is_empty(&self) -> bool {
        self.resident_bytes == 0 && self.merge_bytes == 0
    }

    /// `steps` with the LoRAs counted: the resident bytes as weights of every stage, the merge
    /// temporary as working memory of the loading ones.
    pub fn apply(&self, mut steps: Vec<PlanStep>) -> Vec<PlanStep> {
        for s in &mut steps {
            let merge = if s.stage.starts_with("load ") {
                self.merge_bytes
            } else {
                0
            };
            s.weights_bytes += self.resident_bytes;
            s.working_bytes += merge;
            s.total_bytes += self.resident_bytes + merge;
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(stage: &str) -> PlanStep {
        PlanStep {
            stage: stage.into(),
            weights_bytes: 100,
            working_bytes: 10,
            total_bytes: 111,
        }
    }

    #[test]
    fn loras_count_in_every_stage_and_merging_in_loads() {
        let lora = LoraBytes {
            resident_bytes: 7,
            merge_bytes: 1000,
        };
        let steps = lora.apply(vec![step("load unet"), step("denoise")]);
        assert_eq!(
            (
                steps[0].weights_bytes,
                steps[0].working_bytes,
                steps[0].total_bytes
            ),
            (107, 1010, 1118)
        );
        assert_eq!(
            (
                steps[1].weights_bytes,
                steps[1].working_bytes,
                steps[1].total_bytes
            ),
            (107, 10, 118)
        );
        assert!(LoraBytes::default().is_empty());
    }
}
