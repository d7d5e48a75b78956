//! What the caller has been shown of the current LLM call, so that an
//! attempt redone after the provider's stream broke repeats nothing
//! (docs/decisions.md, "A reply interrupted mid-stream").
//!
//! The first attempt's text and thinking go out as they arrive. After an
//! interruption, the redone attempt's output is compared with what was
//! shown: while it repeats it, nothing is sent; once it goes on past it, only
//! the new part is sent. Only when it differs (or ends before it) is the
//! shown output void: then one `Retracted` goes out, followed by the redone
//! output so far, and front ends mark the restart. Pure: it returns the
//! events to send.

use openheim_proto::agent_loop::v1::{Retracted, turn_event::Event};

#[derive(Debug, Default)]
pub(crate) struct Shown {
    text: String,
    thinking: String,
    /// Set while an attempt redone after an interruption runs.
    redo: Option<Redo>,
}

#[derive(Debug, Default)]
struct Redo {
    /// Why the previous attempt broke off.
    reason: String,
    text: String,
    thinking: String,
}

#[derive(Clone, Copy)]
enum Part {
    Text,
    Thinking,
}

impl Shown {
    /// The attempt broke off; the next output belongs to its redo.
    pub(crate) fn interrupted(&mut self, reason: String) {
        self.redo = Some(Redo {
            reason,
            ..Redo::default()
        });
    }

    /// Answer text arrived; what to send the caller.
    pub(crate) fn text(&mut self, delta: &str) -> Vec<Event> {
        self.arrived(Part::Text, delta)
    }

    /// Reasoning text arrived; what to send the caller.
    pub(crate) fn thinking(&mut self, delta: &str) -> Vec<Event> {
        self.arrived(Part::Thinking, delta)
    }

    /// The call finished: a redo that ended before repeating everything
    /// shown voids it too.
    pub(crate) fn finished(&mut self) -> Vec<Event> {
        match &self.redo {
            Some(redo) if redo.text != self.text || redo.thinking != self.thinking => {
                self.restart()
            }
            _ => Vec::new(),
        }
    }

    fn arrived(&mut self, part: Part, delta: &str) -> Vec<Event> {
        let Some(redo) = &mut self.redo else {
            self.shown_mut(part).push_str(delta);
            return vec![event(part, delta.to_owned())];
        };
        let again = match part {
            Part::Text => &mut redo.text,
            Part::Thinking => &mut redo.thinking,
        };
        again.push_str(delta);
        let again = again.clone();
        let shown = self.shown_mut(part);
        if shown.starts_with(&again) {
            return Vec::new();
        }
        if let Some(new) = again.strip_prefix(shown.as_str()) {
            let new = new.to_owned();
            *shown = again;
            return vec![event(part, new)];
        }
        self.restart()
    }

    /// Voids what was shown; the redone output so far replaces it.
    fn restart(&mut self) -> Vec<Event> {
        let Some(redo) = self.redo.take() else {
            return Vec::new();
        };
        let mut events = vec![Event::Retracted(Retracted {
            reason: redo.reason,
        })];
        if !redo.thinking.is_empty() {
            events.push(Event::ThinkingDelta(redo.thinking.clone()));
        }
        if !redo.text.is_empty() {
            events.push(Event::TextDelta(redo.text.clone()));
        }
        self.text = redo.text;
        self.thinking = redo.thinking;
        events
    }

    fn shown_mut(&mut self, part: Part) -> &mut String {
        match part {
            Part::Text => &mut self.text,
            Part::Thinking => &mut self.thinking,
        }
    }
}

fn event(part: Part, text: String) -> Event {
    match part {
        Part::Text => Event::TextDelta(text),
        Part::Thinking => Event::ThinkingDelta(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::TextDelta(t) => format!("text {t}"),
                Event::ThinkingDelta(t) => format!("thinking {t}"),
                Event::Retracted(r) => format!("retracted {}", r.reason),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn feed(shown: &mut Shown, pieces: &[&str]) -> Vec<String> {
        let events: Vec<Event> = pieces.iter().flat_map(|p| shown.text(p)).collect();
        texts(&events)
    }

    #[test]
    fn a_redo_that_repeats_the_shown_text_sends_only_what_is_new() {
        let mut shown = Shown::default();
        assert_eq!(feed(&mut shown, &["ECHO: s"]), ["text ECHO: s"]);
        shown.interrupted("reset".into());
        assert_eq!(
            feed(&mut shown, &["ECH", "O: say", " more"]),
            ["text ay", "text  more"]
        );
        assert!(shown.finished().is_empty());
    }

    #[test]
    fn a_redo_that_differs_retracts_once_and_resends_the_redo() {
        let mut shown = Shown::default();
        feed(&mut shown, &["Hello wor"]);
        shown.interrupted("reset".into());
        assert_eq!(
            feed(&mut shown, &["Hello", " there", "!"]),
            ["retracted reset", "text Hello there", "text !"]
        );
        assert!(shown.finished().is_empty());
    }

    #[test]
    fn a_redo_that_ends_short_of_the_shown_text_retracts_at_the_end() {
        let mut shown = Shown::default();
        feed(&mut shown, &["Hello world"]);
        shown.interrupted("cut".into());
        assert!(feed(&mut shown, &["Hello"]).is_empty());
        assert_eq!(texts(&shown.finished()), ["retracted cut", "text Hello"]);
    }

    #[test]
    fn thinking_is_compared_like_text_and_resent_first() {
        let mut shown = Shown::default();
        let _ = shown.thinking("plan A");
        shown.interrupted("cut".into());
        assert!(shown.thinking("plan").is_empty());
        assert_eq!(
            texts(&shown.thinking(" B")),
            ["retracted cut", "thinking plan B"]
        );
        assert_eq!(feed(&mut shown, &["answer"]), ["text answer"]);
    }

    #[test]
    fn a_second_interruption_compares_with_what_was_shown() {
        let mut shown = Shown::default();
        feed(&mut shown, &["one two three"]);
        shown.interrupted("a".into());
        assert!(feed(&mut shown, &["one"]).is_empty());
        shown.interrupted("b".into());
        assert_eq!(feed(&mut shown, &["one two three four"]), ["text  four"]);
        assert!(shown.finished().is_empty());
    }

    #[test]
    fn multibyte_text_is_split_on_character_boundaries() {
        let mut shown = Shown::default();
        feed(&mut shown, &["ünï"]);
        shown.interrupted("x".into());
        assert_eq!(feed(&mut shown, &["ü", "nïcødé"]), ["text cødé"]);
    }
}
