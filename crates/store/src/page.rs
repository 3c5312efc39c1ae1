//! Keyset pagination over UUIDv7 ids, which sort in creation order.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first, the default of every list.
    #[default]
    Desc,
    Asc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items.
    pub limit: u32,
    /// Items strictly after this id, in the list's order.
    pub after: Option<String>,
    pub order: Order,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            after: None,
            order: Order::Desc,
        }
    }
}

impl PageRequest {
    /// The comparison and sort keywords for `column`, given the bound parameter `$n` that holds
    /// `after`. Only fixed fragments are produced, never user input.
    pub(crate) fn keyset(&self, column: &str, param: usize) -> (String, String) {
        let (cmp, dir) = match self.order {
            Order::Desc => ("<", "DESC"),
            Order::Asc => (">", "ASC"),
        };
        (
            format!("(CAST(${param} AS TEXT) IS NULL OR {column} {cmp} ${param})"),
            format!("{column} {dir}"),
        )
    }

    /// One more than asked for, so the store can tell whether another page follows.
    pub(crate) fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    pub(crate) fn from_overfetch(
        mut items: Vec<T>,
        request: &PageRequest,
        id: impl Fn(&T) -> String,
    ) -> Self {
        let limit = request.limit as usize;
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(id)
        } else {
            None
        };
        Self { items, next_after }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_after: self.next_after,
        }
    }
}
