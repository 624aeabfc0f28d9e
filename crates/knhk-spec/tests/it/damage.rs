//! Damage done to example files by the robustness tests: a byte flipped, the text cut short, a
//! line deleted or doubled, a token inserted. Each reader's tests bring their own tokens.

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub(crate) enum Damage {
    Flip { at: usize, byte: u8 },
    Truncate { at: usize },
    DeleteLine { line: usize },
    DuplicateLine { line: usize },
    Insert { at: usize, text: String },
}

/// Returns a strategy of one damage, inserting text drawn from `tokens`.
pub(crate) fn damage(
    tokens: impl Strategy<Value = String> + Clone + 'static,
) -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Flip { at, byte }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        any::<usize>().prop_map(|line| Damage::DeleteLine { line }),
        any::<usize>().prop_map(|line| Damage::DuplicateLine { line }),
        (any::<usize>(), tokens).prop_map(|(at, text)| Damage::Insert { at, text }),
    ]
}

/// Returns `text` with `damage` done to it.
pub(crate) fn apply(text: &str, damage: &Damage) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let len = bytes.len().max(1);
    let lines: Vec<&str> = text.lines().collect();
    match damage {
        Damage::Flip { at, byte } => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b = *byte;
            }
        }
        Damage::Truncate { at } => bytes.truncate(at % len),
        Damage::DeleteLine { line } | Damage::DuplicateLine { line } => {
            let n = lines.len().max(1);
            let mut out: Vec<&str> = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                if i == line % n {
                    if matches!(damage, Damage::DuplicateLine { .. }) {
                        out.push(l);
                        out.push(l);
                    }
                } else {
                    out.push(l);
                }
            }
            bytes = out.join("\n").into_bytes();
        }
        Damage::Insert { at, text } => {
            let at = at % len;
            bytes.splice(at..at, text.bytes());
        }
    }
    bytes
}
