//! Parsing a cell into what it asks for: leading line magics, an optional script (the rest of
//! the cell), or a cell magic. Pure functions, so every rule is unit-tested without sockets.

use std::path::PathBuf;

use crate::options::KernelOptions;

/// Magic names with their help text; used by parsing, completion and inspection.
pub const MAGICS: &[(&str, &str)] = &[
    ("%kflow", "%kflow [key=value …]   set options for the following cells (no arguments: show them).\n\
        Keys: gpu cpu memory image pip apt workers namespace kind backend name env template project.\n\
        An empty value clears a key (gpu=); `%kflow reset` clears all.\n\
        Example: %kflow gpu=1 image=pytorch/pytorch:2.4.0 pip=transformers workers=2 backend=local"),
    ("%kflow_run", "%kflow_run SCRIPT [--key value …] [-- ARGS…]   run a project file as a training job.\n\
        Options as for %kflow, given as flags (--gpu 1 --pip rich). Arguments after `--` go to the script.\n\
        %%kflow_run [--key value …] [-- ARGS…]   (cell magic) the rest of the cell is the script."),
    ("%kflow_jobs", "%kflow_jobs   list the jobs this kernel started."),
    ("%kflow_logs", "%kflow_logs [NAME]   stream a job's logs (default: the last job); interrupt stops following."),
    ("%kflow_yaml", "%kflow_yaml   show the manifest of the next cell instead of submitting it\n\
        (or of the code following the magic in the same cell)."),
    ("%kflow_cancel", "%kflow_cancel [NAME]   cancel a job (default: the last job)."),
    ("%kflow_status", "%kflow_status [NAME]   show a job's status (default: the last job)."),
    ("%%kflow_file", "%%kflow_file PATH   (cell magic) add the cell's text to the next jobs' project as PATH."),
    ("%%kflow_run", "%%kflow_run [--key value …] [-- ARGS…]   (cell magic) run the rest of the cell as a job."),
    ("%%kflow_job", "%%kflow_job [--key value …] [-- ARGS…]   (cell magic) run the rest of the cell as a training job\n\
        (in a session too: the job's logs stream into the cell). The same as %%kflow_run."),
    ("%kflow session", "%kflow session [on|off|stop] [idle=SECONDS|30m|2h|never] [key=value …]\n\
        Session mode: cells run in one long-lived Python (a real ipykernel) in a session pod, state kept\n\
        between cells; the pod is made from the %kflow options (image, gpu, memory, pip, …).\n\
        on: switch this kernel to session mode; off: back to one job per cell (the session is deleted);\n\
        stop: end the session now (the next cell starts a fresh one); idle=: end it after that long\n\
        without a cell (default 1 h). No arguments: show the session."),
];

/// What `%kflow session …` asks for, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    Show,
    On,
    Off,
    Stop,
    /// `None`: never end an idle session.
    Idle(Option<std::time::Duration>),
    SetOption(String, String),
}

/// `Some` when the cell is a `%kflow session …` magic.
pub fn parse_session_magic(cell: &str) -> Option<Result<Vec<SessionCommand>, String>> {
    let mut lines = cell.lines().filter(|l| !is_blank(l));
    let first = lines.next()?.trim();
    let rest = first.strip_prefix("%kflow")?.trim_start();
    let args = rest.strip_prefix("session")?;
    if !(args.is_empty() || args.starts_with(char::is_whitespace)) {
        return None;
    }
    if lines.next().is_some() {
        return Some(Err(
            "%kflow session goes in a cell of its own (the following cells run in the session)"
                .into(),
        ));
    }
    let Some(words) = shlex::split(args) else {
        return Some(Err("%kflow session: unbalanced quotes".into()));
    };
    if words.is_empty() {
        return Some(Ok(vec![SessionCommand::Show]));
    }
    let mut commands = Vec::new();
    for w in words {
        let c = match w.as_str() {
            "on" => SessionCommand::On,
            "off" => SessionCommand::Off,
            "stop" => SessionCommand::Stop,
            "status" => SessionCommand::Show,
            _ => match w.split_once('=') {
                Some(("idle", v)) => match idle_timeout(v) {
                    Ok(d) => SessionCommand::Idle(d),
                    Err(e) => return Some(Err(e)),
                },
                Some((k, v)) => {
                    let mut probe = KernelOptions::default();
                    if let Err(e) = probe.set(k, v) {
                        return Some(Err(e));
                    }
                    SessionCommand::SetOption(k.to_string(), v.to_string())
                }
                None => {
                    return Some(Err(format!(
                        "%kflow session {w}: expected on, off, stop, idle=… or key=value"
                    )))
                }
            },
        };
        commands.push(c);
    }
    Some(Ok(commands))
}

/// `600`, `30s`, `30m`, `2h`, `never`/`0`.
fn idle_timeout(v: &str) -> Result<Option<std::time::Duration>, String> {
    let v = v.trim();
    if v == "never" || v == "0" {
        return Ok(None);
    }
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("idle={v}: expected seconds, or e.g. 30m, 2h, never"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("idle={v}: the unit is s, m or h (e.g. 30m)")),
    };
    Ok(Some(std::time::Duration::from_secs(secs)))
}

/// A cell kflow runs itself even in session mode: it starts with one of kflow's magics.
pub fn is_kflow_cell(cell: &str) -> bool {
    cell.lines()
        .find(|l| !is_blank(l))
        .map(|l| {
            let t = l.trim_start();
            t.starts_with("%kflow") || t.starts_with("%%kflow") || t.starts_with("?%kflow")
        })
        .unwrap_or(false)
}

pub fn help(name: &str) -> Option<&'static str> {
    MAGICS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ShowOptions,
    ResetOptions,
    SetOptions(Vec<(String, String)>),
    Run {
        script: PathBuf,
        overrides: Box<KernelOptions>,
        args: Vec<String>,
    },
    Jobs,
    Logs(Option<String>),
    Yaml,
    Cancel(Option<String>),
    Status(Option<String>),
    Help(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum CellPlan {
    /// Line magics run in order, then the remaining code (if any) is submitted as a job.
    Lines {
        commands: Vec<Command>,
        code: Option<String>,
    },
    /// `%%kflow_file PATH`.
    File { path: String, contents: String },
    /// `%%kflow_run …`: the rest of the cell is the script.
    CellRun {
        overrides: Box<KernelOptions>,
        args: Vec<String>,
        code: String,
    },
}

/// True when a line has no effect in a Python script (blank or comment), so a cell made only
/// of magics and comments submits nothing.
fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

pub fn parse_cell(cell: &str) -> Result<CellPlan, String> {
    let trimmed = cell.trim_start_matches(['\n', '\r']);
    if let Some(first) = trimmed.lines().next() {
        let first_t = first.trim();
        if first_t.starts_with("%%") {
            let body = trimmed
                .split_once('\n')
                .map(|(_, b)| b)
                .unwrap_or("")
                .to_string();
            let (name, rest) = first_t
                .split_once(char::is_whitespace)
                .unwrap_or((first_t, ""));
            return match name {
                "%%kflow_file" => {
                    let path = rest.trim();
                    if path.is_empty() {
                        return Err("%%kflow_file needs a path: %%kflow_file utils.py".into());
                    }
                    let p = std::path::Path::new(path);
                    if p.is_absolute()
                        || p.components()
                            .any(|c| matches!(c, std::path::Component::ParentDir))
                    {
                        return Err(format!(
                            "%%kflow_file {path}: use a path inside the project (relative, no ..)"
                        ));
                    }
                    Ok(CellPlan::File {
                        path: path.to_string(),
                        contents: body,
                    })
                }
                "%%kflow_run" | "%%kflow_job" => {
                    let (script, overrides, args) = parse_run_args(rest, false)?;
                    debug_assert!(script.is_none());
                    Ok(CellPlan::CellRun {
                        overrides: Box::new(overrides),
                        args,
                        code: body,
                    })
                }
                other => Err(unknown(other)),
            };
        }
    }

    let mut commands = Vec::new();
    let mut lines = cell.lines().peekable();
    let mut code_lines: Vec<&str> = Vec::new();
    // Leading block: magics, blanks and comments.
    while let Some(line) = lines.peek() {
        let t = line.trim();
        if t.starts_with('%') || t.starts_with('?') || (t.ends_with('?') && t.starts_with('%')) {
            commands.push(parse_line_magic(t)?);
            lines.next();
        } else if is_blank(line) {
            lines.next();
        } else {
            break;
        }
    }
    for line in lines {
        let t = line.trim_start();
        if t.starts_with('%') && !t.starts_with("%=") {
            return Err(format!(
                "{}: magics must come before the code of a cell (the rest of the cell is the job's script)",
                t.split_whitespace().next().unwrap_or(t)
            ));
        }
        if t.starts_with('!') {
            return Err(format!(
                "{t}: shell escapes do not run in a kflow cell (it is the job's script); use %kflow pip=… for packages"
            ));
        }
        code_lines.push(line);
    }
    let code = if code_lines.iter().all(|l| is_blank(l)) {
        None
    } else {
        let mut c = code_lines.join("\n");
        c.push('\n');
        Some(c)
    };
    Ok(CellPlan::Lines { commands, code })
}

fn unknown(name: &str) -> String {
    let names: Vec<&str> = MAGICS.iter().map(|(n, _)| *n).collect();
    format!(
        "unknown magic {name}; kflow's magics are {}",
        names.join(" ")
    )
}

pub fn parse_line_magic(line: &str) -> Result<Command, String> {
    // `%kflow_run?` and `?%kflow_run` ask for help, as in IPython.
    let l = line.trim();
    if let Some(name) = l.strip_prefix('?').or_else(|| l.strip_suffix('?')) {
        let name = name.trim().trim_end_matches('?');
        let name = name.split_whitespace().next().unwrap_or("");
        return help(name)
            .map(|_| Command::Help(name.to_string()))
            .ok_or_else(|| unknown(name));
    }
    let (name, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
    let rest = rest.trim();
    let one_name = |what: &str| -> Result<Option<String>, String> {
        let words = shlex::split(rest).ok_or_else(|| format!("{what}: unbalanced quotes"))?;
        match words.len() {
            0 => Ok(None),
            1 => Ok(Some(words[0].clone())),
            _ => Err(format!("{what} takes at most one job name")),
        }
    };
    match name {
        "%kflow" => {
            let words = shlex::split(rest).ok_or("%kflow: unbalanced quotes")?;
            if words.is_empty() {
                return Ok(Command::ShowOptions);
            }
            if words == ["reset"] {
                return Ok(Command::ResetOptions);
            }
            let mut pairs = Vec::new();
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| format!("%kflow {w}: expected key=value (e.g. gpu=1)"))?;
                let mut probe = KernelOptions::default();
                probe.set(k, v)?;
                pairs.push((k.to_string(), v.to_string()));
            }
            Ok(Command::SetOptions(pairs))
        }
        "%kflow_run" => {
            let (script, overrides, args) = parse_run_args(rest, true)?;
            let script =
                script.ok_or("%kflow_run needs a script: %kflow_run train.py --gpu 1 -- ARGS")?;
            Ok(Command::Run {
                script,
                overrides: Box::new(overrides),
                args,
            })
        }
        "%kflow_jobs" => Ok(Command::Jobs),
        "%kflow_logs" => Ok(Command::Logs(one_name("%kflow_logs")?)),
        "%kflow_yaml" => Ok(Command::Yaml),
        "%kflow_cancel" => Ok(Command::Cancel(one_name("%kflow_cancel")?)),
        "%kflow_status" => Ok(Command::Status(one_name("%kflow_status")?)),
        other => Err(unknown(other)),
    }
}

/// `[SCRIPT] [--key value | --key=value …] [-- ARGS…]`.
fn parse_run_args(
    rest: &str,
    want_script: bool,
) -> Result<(Option<PathBuf>, KernelOptions, Vec<String>), String> {
    let words = shlex::split(rest).ok_or("%kflow_run: unbalanced quotes")?;
    let mut overrides = KernelOptions::default();
    let mut script = None;
    let mut args = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        if w == "--" {
            args.extend(it.by_ref());
            break;
        }
        if let Some(flag) = w.strip_prefix("--") {
            let (key, value) = match flag.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    let v = it.next().ok_or_else(|| format!("--{flag} needs a value"))?;
                    (flag.to_string(), v)
                }
            };
            // Repeated --pip/--env accumulate, as on a command line.
            let mut single = KernelOptions::default();
            single.set(&key.replace('-', "_"), &value)?;
            overrides = overrides.merged(&single);
        } else if want_script && script.is_none() {
            script = Some(PathBuf::from(w));
        } else {
            // Positional words after the script go to the script, like `python train.py a b`.
            args.push(w);
        }
    }
    Ok((script, overrides, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_code_is_a_job() {
        let p = parse_cell("print('hi')\n").unwrap();
        assert_eq!(
            p,
            CellPlan::Lines {
                commands: vec![],
                code: Some("print('hi')\n".into())
            }
        );
        assert_eq!(
            parse_cell("# only a comment\n\n").unwrap(),
            CellPlan::Lines {
                commands: vec![],
                code: None
            }
        );
    }

    #[test]
    fn leading_magics_then_code() {
        let p = parse_cell("%kflow gpu=1 pip=rich\n# c\nimport os\nprint(1)").unwrap();
        match p {
            CellPlan::Lines { commands, code } => {
                assert_eq!(
                    commands,
                    vec![Command::SetOptions(vec![
                        ("gpu".into(), "1".into()),
                        ("pip".into(), "rich".into())
                    ])]
                );
                assert_eq!(code.unwrap(), "import os\nprint(1)\n");
            }
            _ => panic!(),
        }
        assert!(parse_cell("x = 1\n%kflow gpu=1")
            .unwrap_err()
            .contains("before the code"));
        assert!(parse_cell("!pip install x")
            .unwrap_err()
            .contains("shell escapes"));
        assert!(parse_cell("%kflow gpu=x").is_err());
        assert!(parse_cell("%nope").unwrap_err().contains("unknown magic"));
        // `%` inside code that is not at line start is ordinary Python.
        assert!(parse_cell("x = 5 % 2\n").is_ok());
    }

    #[test]
    fn kflow_run_flags_and_args() {
        let c =
            parse_line_magic("%kflow_run train.py --gpu 1 --pip=rich --pip numpy -- --lr 0.1 x")
                .unwrap();
        match c {
            Command::Run {
                script,
                overrides,
                args,
            } => {
                assert_eq!(script, PathBuf::from("train.py"));
                assert_eq!(overrides.gpu, Some(1));
                assert_eq!(overrides.pip, vec!["rich", "numpy"]);
                assert_eq!(args, vec!["--lr", "0.1", "x"]);
            }
            _ => panic!(),
        }
        assert!(parse_line_magic("%kflow_run").is_err());
        assert!(parse_line_magic("%kflow_run t.py --gpu").is_err());
        assert!(parse_line_magic("%kflow_run t.py --bogus 1").is_err());
    }

    #[test]
    fn cell_magics() {
        assert_eq!(
            parse_cell("%%kflow_file utils/helpers.py\ndef f():\n    return 1\n").unwrap(),
            CellPlan::File {
                path: "utils/helpers.py".into(),
                contents: "def f():\n    return 1\n".into()
            }
        );
        assert!(parse_cell("%%kflow_file ../x.py\n").is_err());
        assert!(parse_cell("%%kflow_file /etc/x\n").is_err());
        match parse_cell("%%kflow_run --workers 2 -- a\nprint(1)\n").unwrap() {
            CellPlan::CellRun {
                overrides,
                args,
                code,
            } => {
                assert_eq!(overrides.workers, Some(2));
                assert_eq!(args, vec!["a"]);
                assert_eq!(code, "print(1)\n");
            }
            _ => panic!(),
        }
    }

    #[test]
    fn small_magics_and_help() {
        assert_eq!(parse_line_magic("%kflow").unwrap(), Command::ShowOptions);
        assert_eq!(
            parse_line_magic("%kflow reset").unwrap(),
            Command::ResetOptions
        );
        assert_eq!(
            parse_line_magic("%kflow_logs job-1").unwrap(),
            Command::Logs(Some("job-1".into()))
        );
        assert_eq!(
            parse_line_magic("%kflow_cancel").unwrap(),
            Command::Cancel(None)
        );
        assert!(parse_line_magic("%kflow_status a b").is_err());
        assert_eq!(
            parse_line_magic("%kflow_run?").unwrap(),
            Command::Help("%kflow_run".into())
        );
        assert_eq!(
            parse_line_magic("?%kflow").unwrap(),
            Command::Help("%kflow".into())
        );
    }
}
