//! Reader cases from the reference (`xend-protocol.md` section 1).

use sxp::{MAX_DEPTH, Value, parse, parse_all, parse_spanned};

fn s(x: &str) -> Value {
    Value::str(x)
}

fn l<const N: usize>(items: [Value; N]) -> Value {
    Value::list(items)
}

#[track_caller]
fn check(text: &str, want: Value) {
    match parse(text) {
        Ok(got) => assert_eq!(got, want, "reading {text:?}"),
        Err(e) => panic!("reading {text:?}: {e}"),
    }
}

#[track_caller]
fn check_err(text: &str, want: &str) {
    match parse(text) {
        Ok(v) => panic!("reading {text:?} should fail with {want:?}, read {v:?}"),
        Err(e) => assert_eq!(e.to_string(), want, "reading {text:?}"),
    }
}

#[test]
fn atoms_and_lists() {
    check("abc", s("abc"));
    check("-b---", s("-b---"));
    check("vif5.0", s("vif5.0"));
    check("aa:00:00:12:34:56", s("aa:00:00:12:34:56"));
    check("file:/x", s("file:/x"));
    check("@", s("@"));
    check("()", l([]));
    check("(a)", l([s("a")]));
    check(
        "(domain (id 5) (name ttylinux))",
        l([
            s("domain"),
            l([s("id"), s("5")]),
            l([s("name"), s("ttylinux")]),
        ]),
    );
    check("((a) (b))", l([l([s("a")]), l([s("b")])]));
    // Atoms may hold quotes and other punctuation after the first character.
    check("a'b\"c", s("a'b\"c"));
    check("über", s("über"));
    // Atoms end at parens without a space.
    check("(a(b)c)", l([s("a"), l([s("b")]), s("c")]));
}

#[test]
fn whitespace_set() {
    check(
        " \t\n\x0b\x0c\r(a \t\n\x0b\x0c\rb) \r\n",
        l([s("a"), s("b")]),
    );
}

#[test]
fn comments() {
    check(
        "# comment\n(a # comment (not a list\n b)",
        l([s("a"), s("b")]),
    );
    // `#` inside an atom ends it and starts a comment.
    check("(abc#def ghi\n x)", l([s("abc"), s("x")]));
    // `#` inside a string is literal.
    check("'a#b'", s("a#b"));
    check("(a) # trailing comment without newline", l([s("a")]));
}

#[test]
fn strings_and_escapes() {
    check("''", s(""));
    check("\"\"", s(""));
    check("'/dev/sda1 ro'", s("/dev/sda1 ro"));
    check("\"it's\"", s("it's"));
    check("'say \"hi\"'", s("say \"hi\""));
    check(
        r#"'\a\b\t\n\v\f\r\\\'\"'"#,
        s("\x07\x08\t\n\x0b\x0c\r\\'\""),
    );
    // \xHH: exactly two hex digits, either case (the original decoded A-F wrongly).
    check(r"'\x41\x4a\x4A\xff\x0a'", s("AJJ\u{ff}\n"));
    check(r"'\x4'", s(r"\x4"));
    check(r"'\xg1'", s(r"\xg1"));
    check(r"'\x414'", s("A4"));
    // Octal: up to three digits.
    check(r"'\101\0\12x\1234'", s("A\0\nxS4"));
    // Unknown escapes keep the backslash.
    check(r"'\q\(\ '", s(r"\q\(\ "));
    // Strings are literal otherwise: newlines, parens, hashes, non-ASCII.
    check("'a\nb (c) #d é 中'", s("a\nb (c) #d é 中"));
}

#[test]
fn eot_at_top_level_ends_input() {
    check("(a b)\x04(garbage", l([s("a"), s("b")]));
    assert_eq!(parse_all("a\x04b").unwrap(), vec![s("a")]);
}

#[test]
fn parse_all_reads_a_sequence() {
    assert_eq!(parse_all("").unwrap(), vec![]);
    assert_eq!(parse_all(" # only a comment\n").unwrap(), vec![]);
    assert_eq!(
        parse_all("(a 1) (b 2)\nc").unwrap(),
        vec![l([s("a"), s("1")]), l([s("b"), s("2")]), s("c")]
    );
}

#[test]
fn errors_carry_line_and_column() {
    check_err("(a))", "1:4: unexpected ')': no list is open");
    check_err(")", "1:1: unexpected ')': no list is open");
    check_err(
        "(vm\n  (name a)\n  (memory 64\n",
        "3:3: unexpected EOF: the list opened here is not closed (missing ')')",
    );
    check_err(
        "(a 'bc",
        "1:4: unexpected EOF: the string opened here is not closed (missing ')",
    );
    check_err(
        "\n  \"ab\\\"",
        "2:3: unexpected EOF: the string opened here is not closed (missing \")",
    );
    check_err(
        "'ab\\",
        "1:1: unexpected EOF: the string opened here is not closed (missing ')",
    );
    check_err("", "1:1: expected an SXP value, found end of input");
    check_err(
        "# nothing\n",
        "2:1: expected an SXP value, found end of input",
    );
    check_err(
        "(a)\n (b)",
        "2:2: expected one SXP value, but another value starts here",
    );
    check_err(
        "(a \x01)",
        "1:4: unexpected control character U+0001; quote it in a string as \\x01",
    );
    check_err(
        "(a \x04)",
        "1:4: unexpected control character U+0004; quote it in a string as \\x04",
    );
    // Columns count characters, not bytes.
    check_err("(é ü))", "1:6: unexpected ')': no list is open");
}

#[test]
fn nesting_is_capped() {
    let ok = format!("{}{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = "(".repeat(MAX_DEPTH + 1);
    let e = parse(&deep).unwrap_err();
    assert_eq!((e.line, e.col), (1, MAX_DEPTH as u32 + 1));
    assert_eq!(
        e.message,
        format!("lists are nested deeper than {MAX_DEPTH} levels")
    );
    // Far deeper input is refused the same way, without overflowing the stack.
    assert!(parse(&"(".repeat(1_000_000)).is_err());
}

#[test]
fn spanned_values_know_where_they_start() {
    let v = parse_spanned("(vm\n  (name a)\n  (memory 'lots'))").unwrap();
    assert_eq!((v.line, v.col), (1, 1));
    let memory = v.child("memory").unwrap();
    assert_eq!((memory.line, memory.col), (3, 3));
    let value = &memory.rest()[0];
    assert_eq!(
        (value.line, value.col, value.as_str()),
        (3, 11, Some("lots"))
    );
    assert_eq!(v.to_value(), parse("(vm (name a) (memory lots))").unwrap());
}

#[test]
fn accessors() {
    let v =
        parse("(domain (id 5) (device (vif (idx 0))) (device (vbd (idx 1))) (name x) 7)").unwrap();
    assert_eq!(v.head(), Some("domain"));
    assert_eq!(v.child_value("id"), Some("5"));
    assert_eq!(v.child_value("name"), Some("x"));
    assert_eq!(v.child_value("nope"), None);
    assert_eq!(v.children("device").count(), 2);
    assert_eq!(v.child("device").unwrap().rest()[0].head(), Some("vif"));
    assert_eq!(v.rest().len(), 5);
    assert_eq!(s("x").rest(), &[] as &[Value]);
    assert_eq!(s("x").head(), None);
    assert_eq!(l([]).head(), None);
    assert_eq!(l([l([s("a")])]).head(), None);
}
