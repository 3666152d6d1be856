//! The room's awareness states (cursors, selections, names), as
//! y-protocols `awareness.js` keeps them, with Duet's rules on top:
//! - a client id belongs to the member that first sent it, while that
//!   member stays: another member's states for it are ignored (before, a
//!   member could move or relabel anyone's cursor, and leaving took the
//!   victim's cursor away);
//! - a member holds at most [`CLIENTS_PER_MEMBER`] client ids, each state
//!   at most `Caps::max_awareness_bytes` of JSON;
//! - a `user.color` / `user.colorLight` is a CSS colour and nothing more
//!   (y-codemirror.next puts it in a `style` attribute as it is): hex,
//!   `rgb()`/`hsl()`, `color-mix()` and names, never a `;`, a `:`, quotes,
//!   escapes or a function that loads something (`url()`, `image()`...).
//!
//! Joiners get the states in messages that fit the frame limit.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::task::Caps;
use crate::challenges::doc::AwarenessUpdate;
use crate::channels::presence::Owner;

/// Client ids one member may hold: one Y.Doc per tab, and Yjs picks a new
/// id when it sees its own id from elsewhere; four leave room for that.
pub const CLIENTS_PER_MEMBER: usize = 4;

/// One client's last known state.
struct ClientState {
    /// The member (of this node or another) that sent it first.
    owner: Owner,
    clock: u32,
    /// `None` once the client removed its state.
    json: Option<Arc<str>>,
}

/// An entry of an awareness message: (client id, clock, JSON or `"null"`).
pub type Entry = (u64, u32, Arc<str>);

#[derive(Default)]
pub struct Awareness {
    clients: HashMap<u64, ClientState>,
}

impl Awareness {
    /// Takes a member's awareness update; returns the entries accepted
    /// (to relay to the others), or why the whole update was refused.
    pub fn apply(
        &mut self,
        member: Owner,
        update: AwarenessUpdate,
        caps: &Caps,
    ) -> Result<Vec<Entry>, &'static str> {
        let mut owned = self.clients.values().filter(|c| c.owner == member).count();
        for (id, entry) in &update.clients {
            if entry.json.len() > caps.max_awareness_bytes {
                return Err("awareness state too large");
            }
            if !colours_are_colours(&entry.json) {
                return Err("invalid awareness colour");
            }
            if !self.clients.contains_key(&id.get()) {
                owned += 1;
                if owned > CLIENTS_PER_MEMBER {
                    return Err("too many awareness clients");
                }
            }
        }
        let mut accepted = Vec::new();
        for (id, entry) in update.clients {
            let id = id.get();
            let gone = &*entry.json == "null";
            let take = match self.clients.get(&id) {
                None => true,
                Some(cur) if cur.owner != member => false,
                Some(cur) => {
                    cur.clock < entry.clock
                        || (cur.clock == entry.clock && gone && cur.json.is_some())
                }
            };
            if take {
                self.clients.insert(
                    id,
                    ClientState {
                        owner: member,
                        clock: entry.clock,
                        json: (!gone).then(|| entry.json.clone()),
                    },
                );
                accepted.push((id, entry.clock, entry.json));
            }
        }
        Ok(accepted)
    }

    /// The states of clients not gone whose owner passes `keep`, as
    /// awareness messages of at most about half the frame limit each.
    pub fn messages(&self, keep: impl Fn(Owner) -> bool, caps: &Caps) -> Vec<Vec<u8>> {
        let budget = (caps.max_frame_bytes / 2).max(1);
        let mut out = Vec::new();
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        for (id, state) in &self.clients {
            let Some(json) = state.json.as_ref().filter(|_| keep(state.owner)) else {
                continue;
            };
            if !batch.is_empty() && bytes + json.len() > budget {
                out.push(crate::challenges::doc::awareness_message(std::mem::take(
                    &mut batch,
                )));
                bytes = 0;
            }
            bytes += json.len() + 16;
            batch.push((*id, state.clock, json.clone()));
        }
        if !batch.is_empty() {
            out.push(crate::challenges::doc::awareness_message(batch));
        }
        out
    }

    /// A member left: its clients go; returns their removal entries for
    /// the others (a `"null"` state one clock later).
    pub fn remove_member(&mut self, member: Owner) -> Vec<Entry> {
        self.remove_where(|owner| owner == member)
    }

    /// A node is gone: its members' clients go (as [`Self::remove_member`]).
    pub fn remove_node(&mut self, node: u32) -> Vec<Entry> {
        self.remove_where(|owner| owner.node == node)
    }

    fn remove_where(&mut self, gone_owner: impl Fn(Owner) -> bool) -> Vec<Entry> {
        let mut gone = Vec::new();
        self.clients.retain(|id, s| {
            if !gone_owner(s.owner) {
                return true;
            }
            if s.json.is_some() {
                gone.push((*id, s.clock.wrapping_add(1), Arc::from("null")));
            }
            false
        });
        gone
    }
}

/// `user.color` and `user.colorLight`, where present, are CSS colours (see
/// [`is_css_colour`]).
fn colours_are_colours(json: &str) -> bool {
    if !json.contains("olor") {
        return true;
    }
    let Ok(Value::Object(state)) = serde_json::from_str::<Value>(json) else {
        return true;
    };
    let Some(Value::Object(user)) = state.get("user") else {
        return true;
    };
    ["color", "colorLight"]
        .iter()
        .all(|key| match user.get(*key) {
            None | Some(Value::Null) => true,
            Some(Value::String(c)) => is_css_colour(c),
            Some(_) => false,
        })
}

/// Longest colour value accepted (`color-mix(in srgb, rgb(…) 20%, …)` fits).
const COLOUR_MAX: usize = 96;

/// Functions that may load or inject something in a CSS value.
const NOT_COLOURS: &[&str] = &[
    "url",
    "image",
    "element",
    "expression",
    "attr",
    "env",
    "var",
    "fade",
    "src",
];

/// A CSS colour value that cannot be more than a colour: hex, `rgb()`,
/// `hsl()`, `color-mix()` or a name, made of letters, digits, `#(),.%/+-`
/// and spaces only (so no `;` to start a declaration, no `:`, quotes or
/// escapes), and none of the functions that load things.
fn is_css_colour(c: &str) -> bool {
    let lower = c.to_ascii_lowercase();
    !c.is_empty()
        && c.len() <= COLOUR_MAX
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"#(),.%/+- ".contains(&b))
        && !NOT_COLOURS.iter().any(|word| lower.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenges::doc::AwarenessUpdateEntry;

    fn o(sub: u64) -> Owner {
        Owner { node: 1, sub }
    }

    fn caps() -> Caps {
        Caps {
            max_update_bytes: 1 << 20,
            max_doc_bytes: 1 << 20,
            max_awareness_bytes: 256,
            max_frame_bytes: 1024,
        }
    }

    fn update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: entries
                .iter()
                .map(|(id, clock, json)| {
                    (
                        yrs::ClientID::new(*id),
                        AwarenessUpdateEntry {
                            clock: *clock,
                            json: (*json).into(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_client_id_belongs_to_its_first_member() {
        let mut a = Awareness::default();
        let mine = r##"{"user":{"name":"A","color":"#aabbcc"}}"##;
        assert_eq!(
            a.apply(o(1), update(&[(7, 1, mine)]), &caps())
                .unwrap()
                .len(),
            1
        );
        // Member 2 cannot move or relabel client 7, even with a higher clock.
        let spoof = r##"{"user":{"name":"Evil","color":"#000"}}"##;
        assert!(a
            .apply(o(2), update(&[(7, 9, spoof)]), &caps())
            .unwrap()
            .is_empty());
        assert!(a
            .apply(o(2), update(&[(7, 10, "null")]), &caps())
            .unwrap()
            .is_empty());
        // Member 2 leaving does not remove it.
        assert!(a.remove_member(o(2)).is_empty());
        assert_eq!(a.messages(|_| true, &caps()).len(), 1);
        // Its owner leaving does, one clock later.
        let gone = a.remove_member(o(1));
        assert_eq!(gone, vec![(7, 2, Arc::from("null"))]);
    }

    #[test]
    fn sizes_counts_and_colours_are_capped() {
        let mut a = Awareness::default();
        let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(300));
        assert_eq!(
            a.apply(o(1), update(&[(1, 1, &big)]), &caps()),
            Err("awareness state too large")
        );
        let css = r#"{"user":{"color":"red; background:url(//evil.example/x)"}}"#;
        assert_eq!(
            a.apply(o(1), update(&[(1, 1, css)]), &caps()),
            Err("invalid awareness colour")
        );
        assert!(a
            .apply(
                o(1),
                update(&[(1, 1, r##"{"user":{"colorLight":"#12345678"}}"##)]),
                &caps()
            )
            .is_ok());
        let five: Vec<(u64, u32, &str)> = (10..15).map(|id| (id, 1, "{}")).collect();
        assert_eq!(
            a.apply(o(1), update(&five), &caps()),
            Err("too many awareness clients")
        );
        assert!(a.apply(o(1), update(&five[..3]), &caps()).is_ok());
    }

    #[test]
    fn joiners_get_states_in_messages_that_fit() {
        let mut a = Awareness::default();
        let state = format!(r#"{{"x":"{}"}}"#, "y".repeat(200));
        for member in 0..20u64 {
            a.apply(o(member), update(&[(100 + member, 1, &state)]), &caps())
                .unwrap();
        }
        let messages = a.messages(|_| true, &caps());
        assert!(messages.len() > 1);
        assert!(messages.iter().all(|m| m.len() <= caps().max_frame_bytes));
    }
}
