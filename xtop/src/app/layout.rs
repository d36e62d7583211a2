//! Where the last frame drew the table: what [`crate::ui::draw`] returns and
//! the runtime hands back ([`super::App::on_layout`]), so that mouse clicks,
//! paging and scrolling use the geometry actually drawn.
use ratatui::layout::Rect;

use crate::columns::Column;
use crate::model::DomKey;

/// The drawn table's geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct TableLayout {
    /// The table body (under its header line).
    pub body: Rect,
    /// Index of the first table line drawn (the scroll position).
    pub first: usize,
    /// Column x ranges of the header: `(x, width, column)`.
    pub header_cells: Vec<(u16, u16, Column)>,
    /// The domain drawn on each body line.
    pub line_keys: Vec<Option<DomKey>>,
    /// Body lines (one page, for PageUp/PageDown).
    pub page_rows: usize,
}

impl Default for TableLayout {
    fn default() -> Self {
        TableLayout {
            body: Rect::default(),
            first: 0,
            header_cells: Vec::new(),
            line_keys: Vec::new(),
            page_rows: 10,
        }
    }
}
