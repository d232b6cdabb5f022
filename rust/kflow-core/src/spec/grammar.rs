//! The run options as every surface spells them: the CLI's `--gpu 1`, the kernel's
//! `%kflow gpu=1` and `%kflow_run --gpu 1`, the IPython magic's `%kflow_run --gpu 1` and
//! `kflow.run(gpu=1)`. Said once here, with their aliases and help, so a user who learns one
//! spelling knows them all.

use serde::Serialize;

/// What an option's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionValue {
    /// A whole number.
    Number,
    /// One word or string.
    Text,
    /// Several values: repeated, or separated by commas.
    List,
    /// `NAME=VALUE` pairs.
    Pairs,
    /// A file or folder.
    Path,
}

/// One run option: its name (as `kflow.run`'s keyword and `RunOptions`' field), the other
/// spellings every surface also accepts, its value and a help line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunOption {
    /// The canonical name, with `_` between words, e.g. `project_root`.
    pub name: &'static str,
    /// Other accepted spellings, e.g. `gpus` for `gpu`.
    pub aliases: &'static [&'static str],
    /// What kind of value it takes.
    pub value: OptionValue,
    /// A one-line description for help output.
    pub help: &'static str,
}

const fn option(
    name: &'static str,
    aliases: &'static [&'static str],
    value: OptionValue,
    help: &'static str,
) -> RunOption {
    RunOption {
        name,
        aliases,
        value,
        help,
    }
}

/// Every run option, in the order help lists them.
pub const RUN_OPTIONS: &[RunOption] = &[
    option(
        "gpu",
        &["gpus"],
        OptionValue::Number,
        "GPUs per replica, e.g. gpu=1",
    ),
    option(
        "cpu",
        &[],
        OptionValue::Text,
        "CPU request per replica, e.g. cpu=4",
    ),
    option(
        "memory",
        &["mem"],
        OptionValue::Text,
        "memory request per replica, e.g. memory=16Gi",
    ),
    option("image", &[], OptionValue::Text, "container image"),
    option(
        "pip",
        &[],
        OptionValue::List,
        "pip packages, comma-separated: pip=torch,numpy",
    ),
    option(
        "requirements",
        &[],
        OptionValue::Path,
        "a requirements.txt whose packages join pip",
    ),
    option(
        "apt",
        &[],
        OptionValue::List,
        "apt packages, comma-separated",
    ),
    option(
        "workers",
        &[],
        OptionValue::Number,
        "replicas in all (PyTorch: 1 master + workers-1)",
    ),
    option(
        "namespace",
        &["ns"],
        OptionValue::Text,
        "Kubernetes namespace",
    ),
    option("kind", &[], OptionValue::Text, "pytorch | tf | mpi"),
    option("backend", &[], OptionValue::Text, "local | cluster"),
    option(
        "name",
        &[],
        OptionValue::Text,
        "job name (default: generated)",
    ),
    option(
        "env",
        &[],
        OptionValue::Pairs,
        "environment variables: env=A=1,B=2",
    ),
    option("template", &[], OptionValue::Text, "a run template by name"),
    option(
        "project_root",
        &["project"],
        OptionValue::Path,
        "project folder packaged with the job (default: the script's or notebook's folder)",
    ),
    option(
        "code_mode",
        &[],
        OptionValue::Text,
        "targz | configmap: how the code travels",
    ),
];

/// The option `word` names, by its name or an alias; `-` and `_` are the same
/// (`--code-mode`, `code_mode=`).
pub fn run_option(word: &str) -> Option<&'static RunOption> {
    let word = word.replace('-', "_");
    RUN_OPTIONS
        .iter()
        .find(|o| o.name == word || o.aliases.iter().any(|a| a.replace('-', "_") == word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_find_one_option_each() {
        assert_eq!(run_option("gpus").map(|o| o.name), Some("gpu"));
        assert_eq!(run_option("code-mode").map(|o| o.name), Some("code_mode"));
        assert_eq!(run_option("project").map(|o| o.name), Some("project_root"));
        assert!(run_option("bogus").is_none());
        let mut spellings: Vec<String> = RUN_OPTIONS
            .iter()
            .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
            .map(|s| s.replace('-', "_"))
            .collect();
        let all = spellings.len();
        spellings.sort();
        spellings.dedup();
        assert_eq!(spellings.len(), all, "a spelling names two options");
    }
}
