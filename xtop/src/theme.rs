//! Themes: TOML files of named styles (`themes/*.toml`, embedded), every field
//! optional and unknown fields rejected, laid over the dark default and then
//! reduced to what the terminal can show (truecolor, 256, 16, or none).
use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The shipped themes, embedded: `(name, TOML text)`.
pub const PRESETS: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../../themes/monochrome.toml")),
];

/// What can be wrong with a theme.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// Neither a shipped theme nor a readable file.
    #[error(
        "unknown theme '{0}'; expected dark, light, high-contrast, monochrome or a path to a .toml file"
    )]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read theme file {path}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is wrong (unknown field, bad colour, ...).
    #[error("theme {name}: {source}")]
    Parse {
        /// Theme name or path.
        name: String,
        /// The TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
}

/// How many colours the terminal shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorDepth {
    /// 24-bit colour.
    TrueColor,
    /// The xterm 256-colour palette.
    Ansi256,
    /// The 16 ANSI colours.
    Ansi16,
    /// No colour (NO_COLOR): attributes only.
    None,
}

impl ColorDepth {
    /// From the environment: `NO_COLOR`, `COLORTERM`, `TERM`.
    pub fn detect() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        if !var("NO_COLOR").is_empty() {
            ColorDepth::None
        } else if matches!(var("COLORTERM").as_str(), "truecolor" | "24bit") {
            ColorDepth::TrueColor
        } else if var("TERM").contains("256") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum ColorSpec {
    Index(u8),
    Text(String),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<ColorSpec>,
    bg: Option<ColorSpec>,
    bold: Option<bool>,
    dim: Option<bool>,
    italic: Option<bool>,
    underlined: Option<bool>,
    reversed: Option<bool>,
}

macro_rules! theme_fields {
    ($($field:ident: $doc:literal,)*) => {
        #[derive(Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ThemeFile {
            $($field: Option<StyleSpec>,)*
        }

        /// Resolved styles, one per thing drawn.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Theme {
            $(#[doc = $doc] pub $field: Style,)*
        }

        impl Theme {
            /// Applies `file`'s styles; a bad colour names its field.
            fn overlay(
                &mut self,
                file: &ThemeFile,
                depth: ColorDepth,
            ) -> Result<(), (&'static str, BadColour)> {
                $(if let Some(spec) = &file.$field {
                    self.$field = apply(self.$field, spec, depth)
                        .map_err(|e| (stringify!($field), e))?;
                })*
                Ok(())
            }

            /// Every style, by field name (for tests and the theme preview).
            pub fn styles(&self) -> Vec<(&'static str, Style)> {
                vec![$((stringify!($field), self.$field),)*]
            }
        }
    };
}

theme_fields! {
    title: "The title line.",
    summary: "The summary lines under the title.",
    table_header: "The table header.",
    row: "Ordinary rows.",
    selected: "The selected row.",
    tagged: "Tagged rows.",
    running: "Running domains' state cell.",
    blocked: "Blocked domains.",
    paused: "Paused domains.",
    crashed: "Crashed domains and dying ones.",
    shutdown: "Shut-down domains.",
    dim: "Secondary text.",
    key: "Hot letters in the key bar.",
    key_label: "Labels in the key bar.",
    dialog: "Dialog bodies.",
    dialog_border: "Dialog borders and titles.",
    button: "Dialog buttons.",
    button_focused: "The focused dialog button.",
    error: "Errors.",
    ok: "Success messages.",
    prompt: "The prompt.",
    spark_cpu: "CPU sparklines.",
    spark_mem: "Memory sparklines.",
    spark_net: "Network sparklines.",
    spark_disk: "Disk sparklines.",
    diff_add: "Added lines in a diff.",
    diff_remove: "Removed lines in a diff.",
}

impl Theme {
    /// A shipped theme by name, or a theme file by path, over the default.
    pub fn load(name_or_path: &str, depth: ColorDepth) -> Result<Theme, ThemeError> {
        let text = match PRESETS.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, text)) => (*text).to_owned(),
            None if Path::new(name_or_path).is_file() => std::fs::read_to_string(name_or_path)
                .map_err(|source| ThemeError::Read {
                    path: name_or_path.to_owned(),
                    source,
                })?,
            None => return Err(ThemeError::Unknown(name_or_path.to_owned())),
        };
        Theme::from_toml(name_or_path, &text, depth)
    }

    /// Parses theme TOML over the default dark theme.
    pub fn from_toml(name: &str, text: &str, depth: ColorDepth) -> Result<Theme, ThemeError> {
        let parse = |t: &str| {
            toml::from_str::<ThemeFile>(t).map_err(|source| ThemeError::Parse {
                name: name.to_owned(),
                source,
            })
        };
        let base = parse(PRESETS[0].1)?;
        let file = parse(text)?;
        let mut theme = Theme::blank();
        let to_err = |(field, e): (&str, BadColour)| ThemeError::Parse {
            name: name.to_owned(),
            source: <toml::de::Error as serde::de::Error>::custom(format!("{field}: {e}")),
        };
        theme.overlay(&base, depth).map_err(to_err)?;
        theme.overlay(&file, depth).map_err(to_err)?;
        Ok(theme)
    }

    fn blank() -> Theme {
        let s = Style::default();
        let mut t = Theme::from_styles(s);
        t.selected = s.add_modifier(Modifier::REVERSED);
        t
    }

    fn from_styles(s: Style) -> Theme {
        Theme {
            title: s,
            summary: s,
            table_header: s,
            row: s,
            selected: s,
            tagged: s,
            running: s,
            blocked: s,
            paused: s,
            crashed: s,
            shutdown: s,
            dim: s,
            key: s,
            key_label: s,
            dialog: s,
            dialog_border: s,
            button: s,
            button_focused: s,
            error: s,
            ok: s,
            prompt: s,
            spark_cpu: s,
            spark_mem: s,
            spark_net: s,
            spark_disk: s,
            diff_add: s,
            diff_remove: s,
        }
    }

    /// The style for a state cell (xentop letters).
    pub fn state(&self, state: &str) -> Style {
        if state.contains('c') || state.contains('d') || state.trim() == crate::model::HUNG {
            self.crashed
        } else if state.contains('s') {
            self.shutdown
        } else if state.contains('p') {
            self.paused
        } else if state.contains('r') {
            self.running
        } else {
            self.blocked
        }
    }

    /// A dialog button, focused or not.
    pub fn button(&self, focused: bool) -> Style {
        if focused {
            self.button_focused
        } else {
            self.button
        }
    }
}

/// A colour that is not a name, `#rrggbb` or 0-255.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("bad colour '{0}'; expected a name like 'red', '#rrggbb' or 0-255")]
pub struct BadColour(pub String);

fn apply(mut style: Style, spec: &StyleSpec, depth: ColorDepth) -> Result<Style, BadColour> {
    if let Some(c) = &spec.fg {
        style.fg = reduce(parse_color(c)?, depth);
    }
    if let Some(c) = &spec.bg {
        style.bg = reduce(parse_color(c)?, depth);
    }
    for (flag, m) in [
        (spec.bold, Modifier::BOLD),
        (spec.dim, Modifier::DIM),
        (spec.italic, Modifier::ITALIC),
        (spec.underlined, Modifier::UNDERLINED),
        (spec.reversed, Modifier::REVERSED),
    ] {
        match flag {
            Some(true) => style = style.add_modifier(m),
            Some(false) => style = style.remove_modifier(m),
            None => {}
        }
    }
    if depth == ColorDepth::None && (spec.bg.is_some() && spec.reversed.is_none()) {
        // Without colour a background highlight would vanish: show it reversed.
        if !matches!(&spec.bg, Some(ColorSpec::Text(t)) if t == "reset") {
            style = style.add_modifier(Modifier::REVERSED);
        }
    }
    Ok(style)
}

fn parse_color(c: &ColorSpec) -> Result<Color, BadColour> {
    let text = match c {
        ColorSpec::Index(i) => return Ok(Color::Indexed(*i)),
        ColorSpec::Text(t) => t.trim(),
    };
    if let Some(hex) = text.strip_prefix('#')
        && hex.len() == 6
        && let Ok(v) = u32::from_str_radix(hex, 16)
    {
        return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    Ok(
        match text
            .to_ascii_lowercase()
            .replace(['_', '-', ' '], "")
            .as_str()
        {
            "reset" | "default" => Color::Reset,
            "black" => Color::Black,
            "red" => Color::Red,
            "green" => Color::Green,
            "yellow" => Color::Yellow,
            "blue" => Color::Blue,
            "magenta" => Color::Magenta,
            "cyan" => Color::Cyan,
            "gray" | "grey" => Color::Gray,
            "darkgray" | "darkgrey" => Color::DarkGray,
            "lightred" => Color::LightRed,
            "lightgreen" => Color::LightGreen,
            "lightyellow" => Color::LightYellow,
            "lightblue" => Color::LightBlue,
            "lightmagenta" => Color::LightMagenta,
            "lightcyan" => Color::LightCyan,
            "white" => Color::White,
            _ => {
                return Err(BadColour(text.to_owned()));
            }
        },
    )
}

/// Reduces a colour to what the terminal shows (`None` = no colour at all).
fn reduce(c: Color, depth: ColorDepth) -> Option<Color> {
    match (depth, c) {
        (ColorDepth::None, _) => None,
        (ColorDepth::TrueColor, c) => Some(c),
        (ColorDepth::Ansi256, Color::Rgb(r, g, b)) => Some(Color::Indexed(rgb_to_256(r, g, b))),
        (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => Some(nearest_16(r, g, b)),
        (ColorDepth::Ansi16, Color::Indexed(i)) if i >= 16 => {
            let (r, g, b) = index_to_rgb(i);
            Some(nearest_16(r, g, b))
        }
        (_, c) => Some(c),
    }
}

const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    let level = |v: u8| {
        CUBE.iter()
            .enumerate()
            .min_by_key(|(_, c)| (**c as i32 - v as i32).abs())
            .unwrap()
            .0 as u8
    };
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube = 16 + 36 * ri + 6 * gi + bi;
    let dist = |(x, y, z): (u8, u8, u8)| {
        let d = |a: u8, b: u8| (a as i32 - b as i32).pow(2);
        d(x, r) + d(y, g) + d(z, b)
    };
    let avg = ((r as u32 + g as u32 + b as u32) / 3) as u8;
    let gray_i = if avg < 8 {
        0
    } else {
        ((avg as u32 - 8) / 10).min(23) as u8
    };
    let gray = 232 + gray_i;
    if dist(index_to_rgb(gray)) < dist(index_to_rgb(cube)) {
        gray
    } else {
        cube
    }
}

fn index_to_rgb(i: u8) -> (u8, u8, u8) {
    match i {
        0..=15 => BASIC[i as usize].1,
        16..=231 => {
            let i = i - 16;
            (
                CUBE[(i / 36) as usize],
                CUBE[((i / 6) % 6) as usize],
                CUBE[(i % 6) as usize],
            )
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            (v, v, v)
        }
    }
}

const BASIC: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

fn nearest_16(r: u8, g: u8, b: u8) -> Color {
    BASIC
        .iter()
        .min_by_key(|(_, (x, y, z))| {
            let d = |a: u8, b: u8| (a as i32 - b as i32).pow(2);
            d(*x, r) + d(*y, g) + d(*z, b)
        })
        .unwrap()
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_loads_at_every_depth() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../themes");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{files:?}");
        for path in &files {
            let name = path.file_stem().unwrap().to_str().unwrap();
            assert!(
                PRESETS.iter().any(|(n, _)| *n == name),
                "{name} is not embedded"
            );
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::Ansi16,
                ColorDepth::None,
            ] {
                let t = Theme::load(path.to_str().unwrap(), depth)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for (field, style) in t.styles() {
                    match depth {
                        ColorDepth::None => {
                            assert!(style.fg.is_none() && style.bg.is_none(), "{name}.{field}")
                        }
                        ColorDepth::Ansi16 => assert!(
                            !matches!(style.fg, Some(Color::Rgb(..) | Color::Indexed(16..)))
                                && !matches!(style.bg, Some(Color::Rgb(..) | Color::Indexed(16..))),
                            "{name}.{field}: {style:?}"
                        ),
                        ColorDepth::Ansi256 => {
                            assert!(!matches!(style.fg, Some(Color::Rgb(..))), "{name}.{field}")
                        }
                        ColorDepth::TrueColor => {}
                    }
                }
                // The selected row must stand out from ordinary rows in every theme.
                assert_ne!(t.selected, t.row, "{name} at {depth:?}");
            }
        }
    }

    #[test]
    fn unknown_fields_and_bad_colours_are_rejected() {
        let err =
            Theme::from_toml("x", "titel = { fg = \"red\" }", ColorDepth::TrueColor).unwrap_err();
        assert!(format!("{err}").contains("unknown field `titel`"), "{err}");
        let err =
            Theme::from_toml("x", "title = { fg = \"rouge\" }", ColorDepth::TrueColor).unwrap_err();
        assert!(format!("{err}").contains("bad colour 'rouge'"), "{err}");
        let err = Theme::from_toml(
            "x",
            "title = { fg = \"red\", blink = true }",
            ColorDepth::TrueColor,
        )
        .unwrap_err();
        assert!(format!("{err}").contains("unknown field `blink`"), "{err}");
        assert!(matches!(
            Theme::load("nope", ColorDepth::TrueColor),
            Err(ThemeError::Unknown(_))
        ));
    }

    #[test]
    fn a_partial_theme_keeps_the_defaults() {
        let t = Theme::from_toml("x", "title = { fg = \"red\" }", ColorDepth::TrueColor).unwrap();
        let dark = Theme::load("dark", ColorDepth::TrueColor).unwrap();
        assert_eq!(t.title.fg, Some(Color::Red));
        assert_eq!(t.row, dark.row);
    }

    #[test]
    fn colour_fallback() {
        assert_eq!(rgb_to_256(255, 0, 0), 196);
        assert_eq!(rgb_to_256(0x30, 0x30, 0x30), 236);
        assert_eq!(nearest_16(250, 10, 10), Color::LightRed);
        assert_eq!(
            reduce(Color::Indexed(196), ColorDepth::Ansi16),
            Some(Color::LightRed)
        );
    }
}
