//! Rendering and key-handling tests: the real [`App`] and [`crate::ui::draw`]
//! into ratatui's `TestBackend`, fed with snapshots in the API's shapes.
use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use crate::action::{Action, View};
use crate::app::{App, DomOp, Effect, Mode, Options};
use crate::keymap::Keymap;
use crate::model::{Store, tests::snap};
use crate::settings::Settings;
use crate::theme::{ColorDepth, Theme};

fn app_with(readonly: bool, theme: &str) -> App {
    let mut store = Store::new([("node1:8000".to_owned(), "http://node1:8000".to_owned())]);
    let doms = |t: f64| {
        snap(
            t,
            &[
                (0, "Domain-0", "r-----", 100.0 + t),
                (3, "web", "-b----", 10.0 + 0.5 * t),
                (5, "database-primary", "--p---", 40.0),
                (7, "busy", "r-----", 5.0 + t),
            ],
        )
    };
    store.ingest(0, doms(1000.0));
    store.ingest(0, doms(1002.0));
    let opts = Options {
        readonly,
        external_editor: None,
        escape: 0x1d,
        escape_label: "Ctrl-]".into(),
        settings_path: None,
        theme_name: theme.into(),
    };
    let mut app = App::new(
        store,
        Keymap::new(&BTreeMap::new(), readonly).unwrap(),
        Theme::load(theme, ColorDepth::TrueColor).unwrap(),
        opts,
        Settings::default(),
    );
    app.on_snapshot(0, Ok(doms(1004.0)));
    app
}

fn app() -> App {
    app_with(false, "dark")
}

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| {
        crate::ui::draw(f, app);
    })
    .unwrap();
    t
}

/// Renders and hands the drawn layout back, as the runtime does.
fn render_mut(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut layout = None;
    t.draw(|f| layout = Some(crate::ui::draw(f, app))).unwrap();
    app.on_layout(layout.unwrap());
    t
}

fn text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn key(c: char) -> KeyEvent {
    let m = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    KeyEvent::new(KeyCode::Char(c), m)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn select(app: &mut App, name: &str) {
    app.selected = app.store.find(name).map(|r| r.key);
}

#[test]
fn domains_view() {
    let app = app();
    insta::assert_snapshot!(text(&render(&app, 200, 12)));
}

#[test]
fn every_xentop_column_is_in_the_header() {
    let s = text(&render(&app(), 220, 12));
    for h in [
        "ID",
        "NAME",
        "STATE",
        "CPU(sec)",
        "CPU(%)",
        "MEM(k)",
        "MEM(%)",
        "MAXMEM(k)",
        "MAXMEM(%)",
        "VCPUS",
        "NETS",
        "NETTX(k)",
        "NETRX(k)",
        "VBDS",
        "VBD_OO",
        "VBD_RD",
        "VBD_WR",
        "VBD_RSECT",
        "VBD_WSECT",
    ] {
        assert!(s.contains(h), "missing {h} in\n{s}");
    }
    assert!(
        s.contains("4 domains: 2 running, 1 blocked, 1 paused, 0 crashed, 0 dying, 0 shutdown"),
        "{s}"
    );
    assert!(
        s.contains("Mem: 4194304k total, 3145728k used, 1048576k free    CPUs: 2 @ 2400MHz"),
        "{s}"
    );
    assert!(s.contains("CPU% of one CPU (xentop)"), "{s}");
}

#[test]
fn cpu_percent_follows_the_convention() {
    let mut app = app();
    app.dispatch(Action::Sort(Some(
        crate::columns::SortSpec::parse("id").unwrap(),
    )));
    let row = |app: &App| {
        let s = text(&render(app, 200, 12));
        s.lines().find(|l| l.contains(" busy ")).unwrap().to_owned()
    };
    assert!(
        row(&app).contains("100.0"),
        "one CPU busy = 100% in xentop's convention: {}",
        row(&app)
    );
    app.dispatch(Action::CpuMode);
    assert!(
        row(&app).contains(" 50.0"),
        "half the 2-CPU host in virt-top's: {}",
        row(&app)
    );
    assert!(text(&render(&app, 200, 12)).contains("CPU% of host (virt-top)"));
}

#[test]
fn a_40x10_terminal_still_works() {
    let mut app = app();
    let s = text(&render(&app, 40, 10));
    insta::assert_snapshot!(s);
    assert!(s.contains("xtop"));
    assert!(s.contains("NAME"));
    // Dialogs fit too.
    select(&mut app, "web");
    app.on_key(key('d'));
    let s = text(&render(&app, 40, 10));
    assert!(s.contains("Cancel"), "{s}");
    app.on_key(code(KeyCode::Esc));
    app.on_key(key('?'));
    render(&app, 40, 10);
    app.on_key(code(KeyCode::Esc));
    for v in 0..=4 {
        app.dispatch(Action::View(View::from_number(v).unwrap()));
        render(&app, 40, 10);
    }
    render(&app, 1, 1);
}

#[test]
fn destroy_asks_naming_the_domain_and_defaults_to_cancel() {
    let mut app = app();
    select(&mut app, "web");
    app.on_key(key('d'));
    let Mode::Confirm(c) = &app.mode else {
        panic!("no confirm dialog: {:?}", app.mode)
    };
    assert!(!c.ok_focused);
    let s = text(&render(&app, 100, 20));
    insta::assert_snapshot!(s);
    assert!(s.contains("Destroy domain web (id 3)?"), "{s}");
    app.on_key(code(KeyCode::Enter));
    assert!(
        app.take_effects().is_empty(),
        "Enter on the default button cancels"
    );
    assert!(matches!(app.mode, Mode::Normal));
    app.on_key(key('d'));
    app.on_key(code(KeyCode::Right));
    app.on_key(code(KeyCode::Enter));
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::Op { target, op: DomOp::Destroy }] if target.name == "web"),
        "{effects:?}"
    );
}

#[test]
fn p_toggles_pause_and_space_tags_several() {
    let mut app = app();
    select(&mut app, "database-primary");
    app.on_key(key('p'));
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::Op {
            op: DomOp::Unpause,
            ..
        }]
    ));
    select(&mut app, "web");
    app.on_key(key('p'));
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::Op {
            op: DomOp::Pause,
            ..
        }]
    ));
    select(&mut app, "web");
    app.on_key(key(' '));
    select(&mut app, "busy");
    app.on_key(key(' '));
    assert_eq!(app.tagged.len(), 2);
    assert!(text(&render(&app, 200, 12)).contains("[2 tagged]"));
    let ev = xend::api::XendEvent {
        event: "xend.domain.pause".into(),
        name: Some("web".into()),
        domid: Some(3),
        ..Default::default()
    };
    app.on_event(0, &ev);
    assert!(text(&render(&app, 200, 12)).contains("event: domain.pause web"));
    app.on_key(key('s'));
    let names: Vec<String> = app
        .take_effects()
        .into_iter()
        .map(|e| match e {
            Effect::Op {
                target,
                op: DomOp::Shutdown,
            } => target.name,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["web", "busy"]);
}

#[test]
fn readonly_binds_no_action_keys() {
    let mut app = app_with(true, "dark");
    for c in ['p', 's', 'r', 'd', 'c', 'e', 'n'] {
        app.on_key(key(c));
        assert!(app.take_effects().is_empty(), "{c}");
        assert!(matches!(app.mode, Mode::Normal), "{c}");
    }
    app.run_command("destroy web");
    assert!(app.take_effects().is_empty());
    assert!(app.status.as_ref().unwrap().text.contains("read-only"));
    let s = text(&render(&app, 200, 12));
    assert!(s.contains("READ-ONLY") && !s.contains("Destroy"), "{s}");
}

#[test]
fn filter_prompt_and_completion() {
    let mut app = app();
    app.on_key(key('/'));
    for c in "^d".chars() {
        app.on_key(key(c));
    }
    app.on_key(code(KeyCode::Enter));
    let names: Vec<&str> = app
        .visible_rows()
        .iter()
        .map(|r| r.dom.name.as_str())
        .collect();
    assert_eq!(names, ["database-primary"]);
    app.dispatch(Action::Filter(Some("!^d".into())));
    assert_eq!(app.visible_rows().len(), 3);
    app.dispatch(Action::Filter(Some("(".into())));
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .starts_with("filter: bad regex")
    );
    app.dispatch(Action::Filter(Some(String::new())));
    assert_eq!(app.visible_rows().len(), 4);

    app.on_key(key(':'));
    for c in "paus".chars() {
        app.on_key(key(c));
    }
    app.on_key(code(KeyCode::Tab));
    let Mode::Prompt(p) = &app.mode else { panic!() };
    assert_eq!(p.input, "pause");
    for c in " we".chars() {
        app.on_key(key(c));
    }
    app.on_key(code(KeyCode::Tab));
    app.on_key(code(KeyCode::Enter));
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::Op { target, op: DomOp::Pause }] if target.name == "web"),
        "{effects:?}"
    );
}

#[test]
fn sorting_keys() {
    let mut app = app();
    let names = |app: &App| {
        app.visible_rows()
            .iter()
            .map(|r| r.dom.name.clone())
            .collect::<Vec<_>>()
    };
    app.on_key(key('P'));
    assert_eq!(
        names(&app)[..2],
        ["Domain-0".to_owned(), "busy".to_owned()],
        "biggest CPU% first, ties by id"
    );
    app.on_key(key('P'));
    assert_eq!(names(&app)[0], "database-primary", "P again reverses");
    app.run_command("sort name");
    assert_eq!(names(&app), ["Domain-0", "busy", "database-primary", "web"]);
    app.on_key(key('S'));
    assert_eq!(
        app.table.sort.column,
        crate::columns::Column::State,
        "S moves to the next column"
    );
}

#[test]
fn help_lists_every_key() {
    let mut app = app();
    app.on_key(key('?'));
    let s = text(&render(&app, 100, 200));
    for b in app.keymap.bindings() {
        assert!(
            s.contains(&b.command),
            "help lacks {} ({})",
            b.key,
            b.command
        );
    }
    assert!(s.contains("Ctrl-]"));
}

#[test]
fn other_views_and_detail() {
    let mut app = app();
    select(&mut app, "busy");
    app.dispatch(Action::Detail);
    let s = text(&render(&app, 120, 30));
    assert!(
        s.contains("busy (id 7)") && s.contains("console port 9607") && s.contains("CPU  100.0%"),
        "{s}"
    );
    for (v, needle) in [(1, "USE(%)"), (2, "vif7.0"), (3, "xvda"), (4, "AFFINITY")] {
        app.dispatch(Action::View(View::from_number(v).unwrap()));
        let s = text(&render(&app, 140, 30));
        assert!(s.contains(needle), "view {v} lacks {needle}:\n{s}");
    }
    app.dispatch(Action::View(View::Domains));
    app.dispatch(Action::ToggleNets);
    app.dispatch(Action::ToggleVbds);
    app.dispatch(Action::ToggleVcpus);
    let s = text(&render(&app, 140, 30));
    assert!(
        s.contains("Net0 RX:") && s.contains("VBD ") && s.contains("VCPUs(sec):"),
        "{s}"
    );
}

#[test]
fn an_unresponsive_vmm_is_marked_on_its_row_and_in_the_detail_pane() {
    let mut app = app();
    let mut s = snap(
        1006.0,
        &[
            (0, "Domain-0", "r-----", 106.0),
            (3, "web", "-b----", 13.0),
            (7, "busy", "r-----", 11.0),
        ],
    );
    s.domains[1].last_answer = Some(1000.0);
    s.domains[1].unresponsive_since = Some(1002.0);
    app.on_snapshot(0, Ok(s));
    let screen = text(&render(&app, 200, 12));
    let row = |screen: &str, name: &str| {
        screen
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{screen}"))
            .to_owned()
    };
    assert!(row(&screen, "web").contains("?hung?"), "{screen}");
    assert!(!row(&screen, "busy").contains("?hung?"), "{screen}");
    select(&mut app, "web");
    app.dispatch(Action::Detail);
    let screen = text(&render(&app, 120, 30));
    assert!(
        screen.contains("VMM unresponsive for 4 s")
            && screen.contains("since 00:16:42, last answer 00:16:40 UTC"),
        "{screen}"
    );
}

#[test]
fn text_from_xend_never_puts_a_control_character_on_the_screen() {
    // A kernel file may be named with any byte but '/' and NUL: the table
    // and the detail pane show it without the escape sequence in it.
    let mut app = app();
    let mut s = snap(
        1006.0,
        &[(0, "Domain-0", "r-----", 106.0), (3, "web", "-b----", 13.0)],
    );
    s.domains[1].kernel = "/k\u{1b}]0;PWNED\u{7}\n\u{9b}2J".into();
    s.domains[1].image = "elf".into();
    app.on_snapshot(0, Ok(s));
    app.table.columns = crate::columns::parse_fields("name,kernel").unwrap();
    select(&mut app, "web");
    app.dispatch(Action::Detail);
    let screen = text(&render(&app, 160, 30));
    assert!(screen.contains("PWNED"), "{screen}");
    assert!(
        !screen.contains(|c: char| c.is_control() && c != '\n'),
        "{screen:?}"
    );
}

#[test]
fn column_chooser_hides_columns() {
    let mut app = app();
    app.on_key(key('F'));
    insta::assert_snapshot!(text(&render(&app, 60, 28)));
    app.on_key(code(KeyCode::Down));
    app.on_key(key(' ')); // ID off
    app.on_key(code(KeyCode::Esc));
    let s = text(&render(&app, 200, 12));
    assert!(!s.lines().any(|l| l.trim_start().starts_with("ID")), "{s}");
}

#[test]
fn unreachable_xend_is_said_with_the_reason() {
    let mut app = app();
    app.on_snapshot(
        0,
        Err(xend::client::Error::Unreachable {
            url: "http://node1:8000".into(),
            detail: "Connection refused".into(),
        }
        .into()),
    );
    let s = text(&render(&app, 160, 12));
    assert!(
        s.contains("xend at http://node1:8000 is unreachable: cannot talk to xend at"),
        "{s}"
    );
    assert!(
        s.contains("retrying every 3.0 s (figures below are stale)"),
        "{s}"
    );
    app.on_snapshot(0, Ok(snap(1010.0, &[(0, "Domain-0", "r-----", 1.0)])));
    assert!(!text(&render(&app, 160, 12)).contains("unreachable"));
}

#[test]
fn every_theme_renders_the_selection_in_its_style() {
    for (name, _) in crate::theme::PRESETS {
        let app = app_with(false, name);
        let t = render(&app, 200, 12);
        let buf = t.backend().buffer();
        let sel_y = (0..buf.area.height).find(|&y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .contains("Domain-0")
        });
        let y = sel_y.expect("Domain-0 row");
        let cell = &buf[(2, y)];
        assert_eq!(
            cell.fg,
            app.theme.selected.fg.unwrap_or(Color::Reset),
            "{name}"
        );
        assert_eq!(
            cell.modifier.contains(ratatui::style::Modifier::REVERSED),
            app.theme
                .selected
                .add_modifier
                .contains(ratatui::style::Modifier::REVERSED),
            "{name}"
        );
    }
}

#[test]
fn console_pane_shows_the_emulated_screen_and_the_escape_key() {
    let mut app = app();
    select(&mut app, "web");
    app.on_key(key('c'));
    assert!(
        matches!(&app.take_effects()[..], [Effect::ConsoleAttach(t)] if t.console_port == Some(9603))
    );
    app.on_resize(80, 12);
    app.on_console_data(b"minios 0.1.0 (guest ABI v1) booting\r\n\x1b[32mminios@web# \x1b[0m");
    let t = render(&app, 80, 12);
    let s = text(&t);
    insta::assert_snapshot!(s);
    assert!(
        s.contains("Ctrl-] detach") && s.contains("minios@web# "),
        "{s}"
    );
    app.on_key(key('l'));
    assert_eq!(app.take_effects(), [Effect::ConsoleSend(b"l".to_vec())]);
    app.on_key(KeyEvent::new(KeyCode::F(2), KeyModifiers::NONE));
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::Op {
            op: DomOp::Pause,
            ..
        }]
    ));
    // Ctrl-] arrives from crossterm as Ctrl-5.
    app.on_key(KeyEvent::new(KeyCode::Char('5'), KeyModifiers::CONTROL));
    assert_eq!(app.take_effects(), [Effect::ConsoleDetach]);
    assert!(matches!(app.mode, Mode::Normal));
}

#[test]
fn edit_review_shows_the_diff_and_apply_sends_it() {
    let mut app = app();
    select(&mut app, "web");
    app.on_key(key('e'));
    assert!(matches!(&app.take_effects()[..], [Effect::FetchConfig { dom, .. }] if dom == "web"));
    let original = "name = \"web\"\nmemory = 32\n".to_owned();
    app.on_config_fetched(0, "web".into(), Ok(original.clone()));
    // No $EDITOR: the built-in editor.
    assert!(matches!(app.mode, Mode::Editor { .. }));
    app.on_key(code(KeyCode::Down));
    app.on_key(code(KeyCode::End));
    app.on_key(code(KeyCode::Backspace));
    app.on_key(code(KeyCode::Backspace));
    app.on_key(key('4'));
    app.on_key(key('8'));
    app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let s = text(&render(&app, 60, 12));
    insta::assert_snapshot!(s);
    assert!(
        s.contains("- memory = 32") && s.contains("+ memory = 48"),
        "{s}"
    );
    app.on_key(code(KeyCode::Enter));
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::Apply { text, .. }] if text == "name = \"web\"\nmemory = 48\n"),
        "{effects:?}"
    );
    let Effect::Apply {
        purpose,
        original,
        text,
    } = effects.into_iter().next().unwrap()
    else {
        unreachable!()
    };
    app.on_applied(
        purpose.clone(),
        original.clone(),
        text.clone(),
        Err(crate::error::ActionError::Xend(xend::client::Error::Api {
            status: 400,
            message: "<config>:2:10: memory: expected a number".into(),
        })),
    );
    let s = crate::ui_tests::text(&render(&app, 80, 16));
    assert!(s.contains("2:10") && s.contains("Edit again"), "{s}");
    app.on_key(code(KeyCode::Enter));
    let Mode::Editor { area, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(area.lines()[1], "memory = 48", "the edit is kept");
    app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    app.on_key(key('y'));
    app.take_effects();
    let result = xend::client::ConfigureResult {
        live: vec!["memory".into()],
        next_boot: vec![],
    };
    app.on_applied(
        purpose,
        original,
        text,
        Ok(crate::app::ApplyOutcome::Configured(result)),
    );
    let s = crate::ui_tests::text(&render(&app, 80, 16));
    assert!(
        s.contains("Applied now (live): memory") && s.contains("Stored for the next boot: nothing"),
        "{s}"
    );
}

#[test]
fn mouse_selects_rows_and_sorts_by_header() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut app = app();
    let t = render_mut(&mut app, 200, 12);
    let screen = text(&t);
    let lines: Vec<&str> = screen.lines().collect();
    let header_y = lines.iter().position(|l| l.contains("NAME")).unwrap() as u16;
    let web_y = lines.iter().position(|l| l.contains(" web ")).unwrap() as u16;
    let click = |column: u16, row: u16| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    app.on_mouse(click(10, web_y));
    assert_eq!(app.selected_row().unwrap().dom.name, "web");
    let mem_x = lines[header_y as usize].find("MEM(k)").unwrap() as u16;
    app.on_mouse(click(mem_x + 1, header_y));
    assert_eq!(app.table.sort.column, crate::columns::Column::Mem);
    render_mut(&mut app, 200, 12);
    app.on_mouse(click(mem_x + 1, header_y));
    assert!(app.table.sort.reverse, "a second click reverses");
}

#[test]
fn w_saves_the_current_settings() {
    let mut app = app();
    app.on_key(key('M'));
    app.on_key(key('%'));
    app.on_key(key('W'));
    let effects = app.take_effects();
    let [Effect::SaveSettings(s)] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(s.sort.as_deref(), Some("mem"));
    assert_eq!(s.cpu_mode, Some(crate::model::CpuMode::VirtTop));
    assert_eq!(s.theme.as_deref(), Some("dark"));
    assert_eq!(
        s.columns.as_ref().unwrap()[..2],
        ["id".to_owned(), "name".to_owned()]
    );
}

#[test]
fn the_detail_pane_title_shows_the_uuid() {
    const UUID: &str = "6f1c2a4e-0b7d-4c8e-9a51-3d2f0e6b7c90";
    let mut app = app();
    let mut s = snap(
        1006.0,
        &[
            (0, "Domain-0", "r-----", 106.0),
            (3, "web", "-b----", 13.0),
            (7, "busy", "r-----", 11.0),
        ],
    );
    s.domains[1].uuid = Some(UUID.into());
    app.on_snapshot(0, Ok(s));
    select(&mut app, "web");
    app.dispatch(Action::Detail);
    let screen = text(&render(&app, 120, 30));
    assert!(
        screen.contains(&format!(" web (id 3) uuid {UUID} ")),
        "{screen}"
    );
    // A domain without one (Domain-0, an older xend): the title as before.
    select(&mut app, "busy");
    let screen = text(&render(&app, 120, 30));
    assert!(
        screen.contains(" busy (id 7) ") && !screen.contains("uuid"),
        "{screen}"
    );
}

#[test]
fn the_detail_pane_names_the_kernel_of_linux_and_minios_domains() {
    let mut app = app();
    let mut s = snap(
        1006.0,
        &[
            (0, "Domain-0", "r-----", 106.0),
            (3, "web", "-b----", 13.0),
            (7, "busy", "r-----", 11.0),
            (9, "linux1", "r-----", 2.0),
        ],
    );
    s.domains[1].kernel = "minios".into();
    s.domains[1].image = "minios".into();
    s.domains[3].kernel = "/root/.cache/xtop-linux/9800d0f98cf4b7df/vmlinux".into();
    s.domains[3].image = "vmlinux (PVH)".into();
    app.on_snapshot(0, Ok(s));
    select(&mut app, "linux1");
    app.dispatch(Action::Detail);
    let screen = text(&render(&app, 120, 30));
    // The facts column is 44 wide: the path keeps its end.
    assert!(
        screen.contains("kernel vmlinux (PVH) \u{2026}00d0f98cf4b7df/vmlinux"),
        "{screen}"
    );
    // The uptime shares the memory line; the devices line stays.
    assert!(
        screen.contains("console port ")
            && screen.contains("  up 0d ")
            && screen.contains("devices: "),
        "{screen}"
    );
    select(&mut app, "web");
    let screen = text(&render(&app, 120, 30));
    assert!(screen.contains("kernel minios (built-in)"), "{screen}");
    // Domain-0 has no kernel line.
    select(&mut app, "Domain-0");
    let screen = text(&render(&app, 120, 30));
    assert!(!screen.contains("kernel "), "{screen}");
}

#[test]
fn frozen_keeps_the_screen_but_ingests_so_rates_are_right_on_resume() {
    use crate::model::tests::snap_at;
    let mut app = app();
    let doms = |cpu: f64| [(0, "Domain-0", "r-----", 1.0), (3, "web", "-b----", cpu)];
    app.on_snapshot(0, Ok(snap_at(1010.0, Some(500.0), &doms(20.0))));
    app.on_snapshot(0, Ok(snap_at(1013.0, Some(501.0), &doms(20.5))));
    let web = |app: &App| app.store.find("web").unwrap().cpu_pct;
    assert!((web(&app) - 50.0).abs() < 1e-9, "{}", web(&app));
    app.on_key(key('Z'));
    let before = text(&render(&app, 200, 12));
    assert!(before.contains("frozen"), "{before}");
    // Two samples arrive while frozen: 100% then 25%.
    app.on_snapshot(0, Ok(snap_at(1016.0, Some(502.0), &doms(21.5))));
    app.on_snapshot(0, Ok(snap_at(1019.0, Some(506.0), &doms(22.5))));
    assert!((web(&app) - 50.0).abs() < 1e-9, "the screen stays frozen");
    assert_eq!(text(&render(&app, 200, 12)), before);
    // Resuming shows the rate between the last two samples at once, not a
    // rate against the picture the screen froze on.
    app.on_key(key('Z'));
    assert!((web(&app) - 25.0).abs() < 1e-9, "{}", web(&app));
    let h = &app.store.history[&app.store.find("web").unwrap().key];
    assert_eq!(h.cpu.back().copied(), Some(25.0));
}

#[test]
fn twenty_hosts_collapse_to_a_line_each_with_a_down_host_first() {
    let hosts = (0..20).map(|i| (format!("node{i}:8000"), format!("http://node{i}:8000")));
    let mut app = App::new(
        Store::new(hosts),
        Keymap::new(&BTreeMap::new(), false).unwrap(),
        Theme::load("dark", ColorDepth::TrueColor).unwrap(),
        Options {
            readonly: false,
            external_editor: None,
            escape: 0x1d,
            escape_label: "Ctrl-]".into(),
            settings_path: None,
            theme_name: "dark".into(),
        },
        Settings::default(),
    );
    for h in 0..20 {
        if h == 13 {
            let e = crate::error::PollError::NoAnswer { secs: 5.0 };
            app.on_snapshot(h, Err(e));
        } else {
            app.on_snapshot(h, Ok(snap(1000.0, &[(0, "Domain-0", "r-----", 1.0)])));
        }
    }
    assert!(
        app.table.hosts_collapsed,
        "collapsed by default past 3 hosts"
    );
    let s = text(&render(&app, 120, 30));
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[1].starts_with("node13:8000: unreachable: no answer within 5.0 s"),
        "the host that does not answer comes first, with why:\n{s}"
    );
    assert!(lines[2].starts_with("node0:8000: 1 domains"), "{s}");
    assert!(s.contains("+11 more hosts (0 not answering)"), "{s}");
    app.on_key(key('H'));
    let s = text(&render(&app, 120, 30));
    assert!(
        s.contains("node0:8000: 1 domains: 1 running"),
        "expanded:\n{s}"
    );
    assert!(!s.contains("more hosts"), "{s}");
}

#[test]
fn the_detail_pane_shows_console_and_exit_rates() {
    let mut app = app();
    select(&mut app, "busy");
    app.dispatch(Action::Detail);
    let s = text(&render(&app, 120, 30));
    // busy's snapshots: 100 console bytes and 7000 exits per CPU second, one
    // CPU second per second.
    assert!(
        s.contains("exits 7.0k/s") && s.contains("console port 9607  out 100B/s in 0B/s"),
        "{s}"
    );
}

#[test]
fn a_running_save_shows_in_the_status_line_and_the_detail_pane() {
    let mut app = app();
    select(&mut app, "web");
    app.dispatch(Action::Detail);
    let progress = |phase: &str, done: u64, round: u32| xend::api::XendEvent {
        event: "xend.domain.progress".into(),
        name: Some("web".into()),
        domid: Some(3),
        progress: Some(xend::api::OpProgress {
            op: if round > 0 { "migrate" } else { "save" }.into(),
            phase: phase.into(),
            done_bytes: done << 20,
            total_bytes: 256 << 20,
            round,
            dirty_pages: 1234,
            seconds: 2.5,
        }),
        ..Default::default()
    };
    app.on_event(0, &progress("memory", 64, 0));
    let s = text(&render(&app, 120, 30));
    assert!(s.contains("[save web 25%]"), "status line:\n{s}");
    assert!(s.contains("save memory 25% 64.0/256.0 MiB"), "detail:\n{s}");
    assert!(!s.contains("event: domain.progress"), "{s}");
    app.on_event(0, &progress("precopy", 128, 2));
    let s = text(&render(&app, 120, 30));
    assert!(s.contains("[migrate web 50% round 2]"), "{s}");
    assert!(s.contains("round 2, 1234 dirty pages, 2.5 s"), "{s}");
    // Done: gone from both.
    app.on_event(0, &progress("done", 256, 2));
    let s = text(&render(&app, 120, 30));
    assert!(
        !s.contains("[migrate web") && !s.contains("dirty pages"),
        "{s}"
    );
    // A snapshot carrying xend's own progress shows it too.
    let mut snap = crate::model::tests::snap(
        1006.0,
        &[
            (0, "Domain-0", "r-----", 106.0),
            (3, "web", "-b----", 13.0),
            (7, "busy", "r-----", 11.0),
        ],
    );
    snap.domains[1].progress = progress("memory", 48, 0).progress;
    app.on_snapshot(0, Ok(snap));
    let s = text(&render(&app, 120, 30));
    assert!(s.contains("[save web 19%]"), "{s}");
}
