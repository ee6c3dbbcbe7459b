//! The two small text rules Compose applies to a compose file's strings: `$` interpolation
//! (compose-go's `template` package) and the splitting of a string-form `command` / `entrypoint` into
//! arguments (go-shellwords, which compose-go uses, with neither environment nor backtick expansion).
//! Written out rather than taken from a crate: the `shell-words` crate follows POSIX, which differs from
//! go-shellwords exactly where it matters here (backslashes in double quotes, `;` and `|`).

/// A string as Compose interpolates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpolated {
    /// The text before the first substitution, `$$` read as `$` (all of it when `vars` is empty).
    pub literal: String,
    /// The variables substituted, in order: any of them makes the value the operator's.
    pub vars: Vec<String>,
}

/// Compose's interpolation: `$$` is a `$`; `$NAME` and `${NAME}`, `${NAME:-default}`, `-`, `:?`, `?`,
/// `:+`, `+` (defaults may nest) substitute NAME. Any other `$` makes Compose refuse the file.
pub(crate) fn interpolate(text: &str) -> Result<Interpolated, String> {
    let mut literal = String::new();
    let mut vars: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        if vars.is_empty() {
            literal.push_str(&rest[..at]);
        }
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            if vars.is_empty() {
                literal.push('$');
            }
            rest = tail;
            continue;
        }
        let name = name_len(after);
        if name > 0 {
            vars.push(after[..name].to_string());
            rest = &after[name..];
            continue;
        }
        let invalid = || format!("{text:?}: a `$` that starts no variable (Compose refuses it; `$$` is a literal `$`)");
        let inner = after.strip_prefix('{').ok_or_else(invalid)?;
        let close = closing_brace(inner).ok_or_else(invalid)?;
        let body = &inner[..close];
        let name = name_len(body);
        let op = &body[name..];
        let sep = [":-", ":?", ":+", "-", "?", "+"].into_iter().find(|s| op.starts_with(s));
        if name == 0 || (sep.is_none() && !op.is_empty()) {
            return Err(invalid());
        }
        vars.push(body[..name].to_string());
        // A default, error or alternative may substitute more variables.
        if let Some(nested) = sep.and_then(|s| interpolate(&op[s.len()..]).ok()) {
            vars.extend(nested.vars);
        }
        rest = &inner[close + 1..];
    }
    if vars.is_empty() {
        literal.push_str(rest);
    }
    let mut seen = std::collections::HashSet::new();
    vars.retain(|v| seen.insert(v.clone()));
    Ok(Interpolated { literal, vars })
}

/// Length of a variable name at the start (`[_a-zA-Z][_a-zA-Z0-9]*`, ASCII as in compose-go).
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if !b.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
        return 0;
    }
    b.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
}

/// Index of the `}` that closes a `${`, counting nested braces (bytes: no UTF-8 sequence holds a brace).
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    s.bytes().position(|b| {
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {}
        }
        depth == 0
    })
}

/// A string-form `command` / `entrypoint` split into arguments as compose-go splits it (go-shellwords
/// 1.0.12, no expansion): blanks separate, quotes group, a backslash escapes any character outside
/// single quotes (`\t` and `\n` read as tab and newline), and an unquoted `;`, `&`, `|`, `<` or `>` ends
/// the command (the rest is dropped, as go-shellwords drops it). Unbalanced quotes or a bare `(` are
/// errors, as in Compose.
pub(crate) fn split(line: &str) -> Result<Vec<String>, String> {
    let err = || format!("{line:?} cannot be split into arguments (unbalanced quotes or parentheses)");
    let mut args = Vec::new();
    let mut buf = String::new();
    let (mut got, mut escaped, mut single, mut double, mut back, mut dollar) =
        (false, false, false, false, false, false);
    for c in line.chars() {
        if escaped {
            escaped = false;
            if back || dollar {
                buf.push('\\');
            }
            buf.push(match c {
                't' if !(back || dollar) => '\t',
                'n' if !(back || dollar) => '\n',
                c => c,
            });
            got = true;
            continue;
        }
        if c == '\\' {
            if single {
                buf.push(c);
            } else {
                escaped = true;
            }
            continue;
        }
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if single || double || back || dollar {
                buf.push(c);
            } else if got {
                args.push(std::mem::take(&mut buf));
                got = false;
            }
            continue;
        }
        match c {
            '`' if !single && !double && !dollar => back = !back,
            ')' if !single && !double && !back => {
                if !dollar {
                    return Err(err());
                }
                dollar = false;
            }
            '(' if !single && !double && !back => {
                if dollar || !buf.ends_with('$') {
                    return Err(err());
                }
                dollar = true;
            }
            '"' if !single && !dollar && !back => {
                got |= double;
                double = !double;
                continue;
            }
            '\'' if !double && !dollar && !back => {
                got |= single;
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !(single || double || back || dollar) => {
                // `2>file`: the digits are the redirection's, not an argument.
                if c == '>' && !buf.is_empty() && buf.bytes().all(|b| b.is_ascii_digit()) {
                    got = false;
                }
                break;
            }
            _ => {}
        }
        got = true;
        buf.push(c);
    }
    if escaped || single || double || back || dollar {
        return Err(err());
    }
    if got {
        args.push(buf);
    }
    Ok(args)
}

/// Whether a `sh -c` script is plain words for any POSIX shell: nothing it expands, substitutes,
/// redirects, chains, globs or comments out. Only then do its words mean what they say.
pub(crate) fn plain_script(script: &str) -> bool {
    !script.contains(|c| "$`\\;|&<>()*?[]{}~#!\n\r".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<String> {
        interpolate(text).unwrap().vars
    }

    #[test]
    fn interpolation_finds_every_substitution_form() {
        for (text, expected) in [
            ("$PIN", vec!["PIN"]),
            ("${PIN}", vec!["PIN"]),
            ("a${PIN:-x}b", vec!["PIN"]),
            ("${PIN-x}", vec!["PIN"]),
            ("${PIN:?set it}", vec!["PIN"]),
            ("${PIN?set it}", vec!["PIN"]),
            ("${PIN:+alt}", vec!["PIN"]),
            ("${PIN+alt}", vec!["PIN"]),
            ("${A:-${B:-${C}}}", vec!["A", "B", "C"]),
            ("${A:-{x}} $B", vec!["A", "B"]),
            ("$$A", vec![]),
            ("$${A}", vec![]),
        ] {
            assert_eq!(vars(text), expected, "{text}");
        }
        assert_eq!(interpolate("a$$b$$").unwrap().literal, "a$b$");
        assert_eq!(interpolate("--deployment=${PIN}x").unwrap().literal, "--deployment=");
        assert_eq!(interpolate("$$x${Y}").unwrap().literal, "$x");
        for bad in ["$", "a $5", "${}", "${1A}", "${A B}", "${A", "${A:x}", "$-"] {
            assert!(interpolate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn splitting_follows_go_shellwords() {
        let s = |line: &str| split(line).unwrap();
        assert_eq!(s("run --deployment 'a b' \"c d\""), ["run", "--deployment", "a b", "c d"]);
        assert_eq!(s("  a\\ b  \"x\\\"y\" '\\n' ''"), ["a b", "x\"y", "\\n", ""]);
        assert_eq!(s("a\\tb"), ["a\tb"], "go-shellwords reads \\t as a tab");
        assert_eq!(s("run --x; rm -rf /"), ["run", "--x"], "an unquoted ; ends the command");
        assert_eq!(s("run 2>/dev/null"), ["run"]);
        assert_eq!(s("echo $(date) `id`"), ["echo", "$(date)", "`id`"], "no expansion");
        assert_eq!(s("a=\"b c\""), ["a=b c"]);
        for bad in ["'open", "\"open", "a (b)", "a)", "trailing\\"] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_scripts_have_nothing_a_shell_expands() {
        assert!(plain_script("exec replicatoor run --deployment-file 'x y'"));
        for script in
            ["replicatoor run $EXTRA", "replicatoor run `x`", "a; b", "a && b", "a\nb", "run *", "run # x", "run ~/x"]
        {
            assert!(!plain_script(script), "{script}");
        }
    }
}
