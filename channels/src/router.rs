//! Topic patterns to channels, as Phoenix's `channel "challenges:*", ...`.
//! A pattern ending in `*` matches every topic with that prefix; any other
//! pattern matches exactly.

use std::sync::Arc;

use super::channel::{run, Channel, JoinArgs};

/// Starts a channel task for a join.
pub trait Route: Send + Sync {
    /// Spawns the channel task of one join (on the endpoint's tracker).
    fn spawn(&self, args: JoinArgs);
}

struct ChannelRoute<C: Channel>(C::State);

impl<C: Channel> Route for ChannelRoute<C> {
    fn spawn(&self, args: JoinArgs) {
        let tracker = args.endpoint.tracker.clone();
        tracker.spawn(run::<C>(self.0.clone(), args));
    }
}

/// Topic patterns in the order they were added; the first match wins.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, Arc<dyn Route>)>,
}

impl Router {
    /// A router with no routes: every join is `"unmatched topic"`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes topics matching `pattern` to channel `C` with `state`.
    pub fn channel<C: Channel>(mut self, pattern: &str, state: C::State) -> Self {
        self.routes
            .push((pattern.to_owned(), Arc::new(ChannelRoute::<C>(state))));
        self
    }

    /// The route of the first pattern that matches `topic`.
    pub fn lookup(&self, topic: &str) -> Option<&Arc<dyn Route>> {
        self.routes
            .iter()
            .find(|(p, _)| matches(p, topic))
            .map(|(_, r)| r)
    }
}

fn matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcard_and_exact_patterns() {
        assert!(matches("challenges:*", "challenges:abc"));
        assert!(matches("challenges:*", "challenges:"));
        assert!(!matches("challenges:*", "challenge:abc"));
        assert!(matches("lobby", "lobby"));
        assert!(!matches("lobby", "lobby2"));
    }
}
