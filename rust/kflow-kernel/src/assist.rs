//! Editor help that never leaves the kernel: completion (magics, option names and values,
//! project paths, job names, Python names), is_complete (a small Python-aware scanner) and
//! inspect (magic help).

use std::collections::BTreeSet;
use std::path::Path;

use crate::magics::{self, MAGICS};
use crate::options::option_keys;

const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

const PY_BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
    "__name__",
    "__file__",
    "Exception",
    "ValueError",
    "TypeError",
    "KeyError",
    "RuntimeError",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub matches: Vec<String>,
    /// Code-point offsets, as the protocol counts them.
    pub cursor_start: usize,
    pub cursor_end: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Complete at `cursor` (code points). `project` is where relative paths are looked up.
pub fn complete(code: &str, cursor: usize, project: &Path, job_names: &[String]) -> Completion {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor.min(chars.len());
    let line_start = chars[..cursor]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    let line: String = chars[line_start..cursor].iter().collect();
    let lead = line.trim_start();
    let empty = |start| Completion {
        matches: vec![],
        cursor_start: start,
        cursor_end: cursor,
    };

    // Token boundaries: magics/paths use wider tokens than Python identifiers.
    let token_start = |pred: &dyn Fn(char) -> bool| {
        let mut s = cursor;
        while s > line_start && pred(chars[s - 1]) {
            s -= 1;
        }
        s
    };

    if lead.starts_with('%') {
        let first_word_end = lead.find(char::is_whitespace);
        if first_word_end.is_none() {
            // Still typing the magic's name.
            let start = token_start(&|c| is_word_char(c) || c == '%');
            let prefix: String = chars[start..cursor].iter().collect();
            let first_line =
                line_start == 0 || chars[..line_start].iter().all(|c| c.is_whitespace());
            let matches = MAGICS
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| n.starts_with(&prefix) && (first_line || !n.starts_with("%%")))
                .map(String::from)
                .collect();
            return Completion {
                matches,
                cursor_start: start,
                cursor_end: cursor,
            };
        }
        let magic = lead.split_whitespace().next().unwrap_or("");
        let start = token_start(&|c| !c.is_whitespace());
        let token: String = chars[start..cursor].iter().collect();
        match magic {
            "%kflow" => {
                if let Some((key, value)) = token.split_once('=') {
                    let values: &[&str] = match key {
                        "kind" => &["pytorch", "tf", "mpi"],
                        "backend" => &["local", "cluster"],
                        _ => &[],
                    };
                    let vstart = start + key.chars().count() + 1;
                    let matches = values
                        .iter()
                        .filter(|v| v.starts_with(value))
                        .map(|v| v.to_string())
                        .collect();
                    return Completion {
                        matches,
                        cursor_start: vstart,
                        cursor_end: cursor,
                    };
                }
                let mut matches: Vec<String> = option_keys()
                    .filter(|(k, _)| k.starts_with(&token))
                    .map(|(k, _)| format!("{k}="))
                    .collect();
                if "reset".starts_with(&token) {
                    matches.push("reset".into());
                }
                return Completion {
                    matches,
                    cursor_start: start,
                    cursor_end: cursor,
                };
            }
            "%kflow_run" | "%%kflow_run" => {
                if let Some(flag) = token.strip_prefix("--") {
                    let matches = option_keys()
                        .filter(|(k, _)| k.starts_with(flag))
                        .map(|(k, _)| format!("--{k}"))
                        .collect();
                    return Completion {
                        matches,
                        cursor_start: start,
                        cursor_end: cursor,
                    };
                }
                return Completion {
                    matches: paths(project, &token),
                    cursor_start: start,
                    cursor_end: cursor,
                };
            }
            "%%kflow_file" => {
                return Completion {
                    matches: paths(project, &token),
                    cursor_start: start,
                    cursor_end: cursor,
                };
            }
            "%kflow_logs" | "%kflow_status" | "%kflow_cancel" => {
                let matches = job_names
                    .iter()
                    .filter(|n| n.starts_with(&token))
                    .cloned()
                    .collect();
                return Completion {
                    matches,
                    cursor_start: start,
                    cursor_end: cursor,
                };
            }
            _ => return empty(cursor),
        }
    }

    // Inside a string literal: complete project paths (open("data/tr…)).
    let quote_start = token_start(&|c| !c.is_whitespace() && c != '"' && c != '\'');
    if quote_start > line_start
        && matches!(chars[quote_start - 1], '"' | '\'')
        && in_string(&line, quote_start - line_start)
    {
        let token: String = chars[quote_start..cursor].iter().collect();
        return Completion {
            matches: paths(project, &token),
            cursor_start: quote_start,
            cursor_end: cursor,
        };
    }

    let start = token_start(&|c| is_word_char(c));
    if start > 0 && chars[start - 1] == '.' {
        // Attribute access needs the live objects the job has; the kernel cannot know them.
        return empty(cursor);
    }
    let prefix: String = chars[start..cursor].iter().collect();
    if prefix.is_empty() {
        return empty(cursor);
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    for w in PY_KEYWORDS.iter().chain(PY_BUILTINS) {
        if w.starts_with(&prefix) {
            names.insert(w.to_string());
        }
    }
    // Names already used in the cell (variables, imports, functions).
    for word in code.split(|c: char| !is_word_char(c)) {
        if word.starts_with(&prefix)
            && word != prefix
            && !word.starts_with(|c: char| c.is_ascii_digit())
        {
            names.insert(word.to_string());
        }
    }
    Completion {
        matches: names.into_iter().collect(),
        cursor_start: start,
        cursor_end: cursor,
    }
}

/// Whether char offset `at` of a single line lies inside an open string literal.
fn in_string(line: &str, at: usize) -> bool {
    let mut quote: Option<char> = None;
    for (i, c) in line.chars().enumerate() {
        if i >= at {
            break;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return false,
            None => {}
        }
    }
    quote.is_some()
}

/// Entries of the project matching a partial relative path; folders end with '/'.
fn paths(project: &Path, token: &str) -> Vec<String> {
    let (dir, prefix) = match token.rfind('/') {
        Some(i) => (&token[..=i], &token[i + 1..]),
        None => ("", token),
    };
    let base = if Path::new(dir).is_absolute() {
        Path::new(dir).to_path_buf()
    } else {
        project.join(dir)
    };
    let Ok(entries) = std::fs::read_dir(&base) else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            Some(format!("{dir}{name}{}", if is_dir { "/" } else { "" }))
        })
        .collect();
    out.sort();
    out.truncate(500);
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Completeness {
    Complete,
    Incomplete(String),
    Invalid,
}

/// Python-ish completeness for console frontends: open brackets, strings, continuation
/// lines, block openers and unfinished indented blocks. Magic lines are always complete.
pub fn is_complete(code: &str) -> Completeness {
    if code.trim().is_empty() {
        return Completeness::Complete;
    }
    if code.trim_start().starts_with("%%") {
        // A cell magic's body ends at an empty line, as in IPython's console.
        return if code.ends_with("\n\n") {
            Completeness::Complete
        } else {
            Completeness::Incomplete(String::new())
        };
    }
    let mut stack: Vec<char> = Vec::new();
    let mut string: Option<(char, bool)> = None; // (quote, triple)
    let mut continued = false;
    let lines: Vec<&str> = code.split('\n').collect();
    for line in &lines {
        continued = false;
        if string.is_none() && stack.is_empty() && line.trim_start().starts_with('%') {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if let Some((q, triple)) = string {
                if c == '\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if !triple {
                        string = None;
                    } else if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                        string = None;
                        i += 2;
                    }
                }
                i += 1;
                continue;
            }
            match c {
                '#' => break,
                '"' | '\'' => {
                    let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
                    string = Some((c, triple));
                    if triple {
                        i += 2;
                    }
                }
                '(' | '[' | '{' => stack.push(c),
                ')' | ']' | '}' => {
                    let open = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    if stack.pop() != Some(open) {
                        return Completeness::Invalid;
                    }
                }
                '\\' if i + 1 == chars.len() => continued = true,
                _ => {}
            }
            i += 1;
        }
        if let Some((_, false)) = string {
            if !continued && !line.ends_with('\\') {
                // An unterminated one-line string is a syntax error in Python.
                return Completeness::Invalid;
            }
        }
    }
    if string.is_some() || !stack.is_empty() || continued {
        return Completeness::Incomplete(String::new());
    }
    let last = lines.last().copied().unwrap_or("");
    let last_code = lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .copied()
        .unwrap_or("");
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let stripped = strip_comment(last_code);
    if stripped.trim_end().ends_with(':') {
        return Completeness::Incomplete(" ".repeat(indent_of(last_code) + 4));
    }
    // Inside an indented block with no blank line after it: the block may go on.
    if !last.trim().is_empty() && indent_of(last) > 0 {
        return Completeness::Incomplete(" ".repeat(indent_of(last)));
    }
    Completeness::Complete
}

fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
    }
    line
}

/// Help for the magic or option under the cursor, if any.
pub fn inspect(code: &str, cursor: usize) -> Option<String> {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor.min(chars.len());
    let word_char = |c: char| is_word_char(c) || c == '%';
    let mut s = cursor;
    while s > 0 && word_char(chars[s - 1]) {
        s -= 1;
    }
    let mut e = cursor;
    while e < chars.len() && word_char(chars[e]) {
        e += 1;
    }
    let word: String = chars[s..e].iter().collect();
    if word.starts_with('%') {
        return magics::help(&word).map(String::from);
    }
    // An option key on a %kflow line.
    let line_start = chars[..s]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    let line: String = chars[line_start..]
        .iter()
        .take_while(|&&c| c != '\n')
        .collect();
    if line.trim_start().starts_with("%kflow") {
        if let Some(option) = kflow_core::run_option(word.trim_start_matches('-')) {
            return Some(format!("{}: {}", option.name, option.help));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Completion {
        complete(
            code,
            code.chars().count(),
            Path::new("/nonexistent"),
            &["job-a".into(), "job-b".into()],
        )
    }

    #[test]
    fn completes_magics_options_values_jobs() {
        let r = c("%kflow_l");
        assert_eq!(r.matches, vec!["%kflow_logs"]);
        assert_eq!(r.cursor_start, 0);
        assert!(c("%kf").matches.contains(&"%kflow_run".to_string()));
        assert!(c("%%kf").matches.contains(&"%%kflow_file".to_string()));
        let r = c("%kflow gpu=1 wo");
        assert_eq!(r.matches, vec!["workers="]);
        assert_eq!(r.cursor_start, 13);
        let r = c("%kflow kind=p");
        assert_eq!(r.matches, vec!["pytorch"]);
        assert_eq!(r.cursor_start, 12);
        assert_eq!(c("%kflow_run t.py --wor").matches, vec!["--workers"]);
        assert_eq!(c("%kflow_logs job-").matches, vec!["job-a", "job-b"]);
    }

    #[test]
    fn completes_python_names_and_paths() {
        assert_eq!(c("zi").matches, vec!["zip"]);
        assert!(c("learning_rate = 1\nlearn")
            .matches
            .contains(&"learning_rate".to_string()));
        assert!(c("x.pri").matches.is_empty());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/train.csv"), "").unwrap();
        std::fs::write(dir.path().join("train.py"), "").unwrap();
        let r = complete("%kflow_run tr", 13, dir.path(), &[]);
        assert_eq!(r.matches, vec!["train.py"]);
        let code = "open('data/t";
        let r = complete(code, code.len(), dir.path(), &[]);
        assert_eq!(r.matches, vec!["data/train.csv"]);
        assert_eq!(r.cursor_start, 6);
        let r = complete("%%kflow_file da", 15, dir.path(), &[]);
        assert_eq!(r.matches, vec!["data/"]);
    }

    #[test]
    fn completeness() {
        use Completeness::*;
        assert_eq!(is_complete("print('hello, world')"), Complete);
        assert_eq!(is_complete("%kflow gpu=1"), Complete);
        assert_eq!(is_complete("x = [1, 2,"), Incomplete(String::new()));
        assert_eq!(is_complete("for i in range(3):"), Incomplete("    ".into()));
        assert_eq!(
            is_complete("for i in range(3):\n    print(i)"),
            Incomplete("    ".into())
        );
        assert_eq!(is_complete("for i in range(3):\n    print(i)\n"), Complete);
        assert_eq!(is_complete("s = \"\"\"abc"), Incomplete(String::new()));
        assert_eq!(is_complete("x = )"), Invalid);
        assert_eq!(is_complete("(]"), Invalid);
        assert_eq!(is_complete("s = 'abc"), Invalid);
        assert_eq!(is_complete("x = 1 + \\"), Incomplete(String::new()));
        assert_eq!(is_complete("d = {'a': 1}  # done:"), Complete);
        assert_eq!(
            is_complete("%%kflow_file a.py\nx=1"),
            Incomplete(String::new())
        );
    }

    #[test]
    fn inspects_magics_and_options() {
        assert!(inspect("%kflow_run train.py", 3)
            .unwrap()
            .contains("SCRIPT"));
        assert!(inspect("%kflow gpu=1", 8).unwrap().starts_with("gpu:"));
        assert!(inspect("print(1)", 2).is_none());
    }
}
