//! Seeded corpus generators (nothing is downloaded) and the byte-level tokenizer.
//!
//! - **Stories**: short tales from a probabilistic grammar with recurring names, places and
//!   phrases. Some spans are nearly certain (formulas, a name repeated within a story), others
//!   are open choices, so a small draft model agrees with a larger target often but not always.
//! - **Arithmetic**: addition and subtraction problems in four difficulty buckets (operands of up
//!   to 1, 2, 3 and 4 digits), each in two formats marked by the line's first token, the control
//!   token: `D` (answer directly) and `T` (think: a digit-by-digit scratchpad, then the answer).
//!
//! ```text
//! D:347+85=432
//! T:347+85=7+5+0=2c1:2 4+8+1=3c1:32 3+0+1=4c0:432|432
//! T:402-75=2-5-0=7b1:7 0-7-1=2b1:27 4-0-1=3b0:327|327
//! ```
//!
//! A scratchpad step `a+b+c=dcC:P` adds digit `a`, digit `b` and the incoming carry `c`, writes
//! the digit `d` and the outgoing carry `C`, and `P` is the answer so far (the new digit in front
//! of the previous partial). Subtraction steps borrow (`bB`). The checker ([`check_answer`]) parses
//! the problem and computes the answer with integer arithmetic, independently of the scratchpad.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Byte-level tokenization: one token per byte (vocabulary 256).
pub fn tokenize(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// Inverse of [`tokenize`] (lossy on invalid UTF-8).
pub fn detokenize(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens.iter().map(|&t| t.min(255) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A Zipf-like draw: item `r` (0-based rank) has weight `1 / (r + 2)`, so a few words are common
/// and many are rare, as in text.
fn pick<'a, R: Rng>(rng: &mut R, items: &[&'a str]) -> &'a str {
    let total: f64 = (0..items.len()).map(|r| 1.0 / (r as f64 + 2.0)).sum();
    let mut x = rng.random::<f64>() * total;
    for (r, item) in items.iter().enumerate() {
        x -= 1.0 / (r as f64 + 2.0);
        if x <= 0.0 {
            return item;
        }
    }
    items[items.len() - 1]
}

const NAMES: &[&str] = &[
    "Lily", "Tom", "Mia", "Ben", "Sara", "Max", "Anna", "Leo", "Zoe", "Sam", "Nora", "Finn",
    "Ella", "Jack", "Ruby", "Oscar", "Ivy", "Hugo", "Lucy", "Milo", "Rosa", "Theo", "Alma",
    "Felix", "Greta", "Omar", "Pia", "Ravi", "Tess", "Yusuf", "Wren", "Basil", "Clara", "Dmitri",
    "Esme",
];
const ANIMALS: &[&str] = &[
    "cat", "dog", "bird", "fox", "rabbit", "bear", "frog", "mouse", "duck", "owl", "turtle",
    "squirrel", "pony", "lamb", "goat", "hedgehog", "badger", "otter", "beaver", "penguin",
    "lizard", "moth", "crab", "snail", "goose", "deer",
];
const ADJS: &[&str] = &[
    "little", "happy", "brave", "curious", "sleepy", "kind", "shy", "big", "clever", "tiny",
    "grumpy", "gentle", "silly", "quiet", "busy", "lonely", "proud", "cheerful", "careful",
    "playful", "hungry", "wise", "fluffy", "clumsy", "patient", "noisy", "polite", "stubborn",
];
const PLACES: &[&str] = &[
    "a small house",
    "the big forest",
    "a quiet village",
    "a farm",
    "the old town",
    "a garden",
    "a cozy cottage",
    "the windy hills",
    "a busy city",
    "the sandy beach",
    "a tall tower",
    "the green valley",
    "a tiny island",
    "the snowy mountains",
    "a red barn",
];
const THINGS: &[&str] = &[
    "ball", "box", "hat", "key", "kite", "book", "stone", "flower", "cake", "shell", "drum",
    "lamp", "map", "rope", "boat", "bell", "cup", "sock", "feather", "apple", "basket", "coin",
    "ribbon", "whistle", "blanket", "pencil", "marble", "acorn", "lantern", "umbrella", "compass",
    "teapot", "button", "puzzle",
];
const COLORS: &[&str] = &[
    "red", "blue", "green", "yellow", "shiny", "soft", "old", "pretty", "purple", "golden",
    "striped", "spotted", "heavy", "broken", "warm", "silver",
];
const SPOTS: &[&str] = &[
    "tree",
    "river",
    "hill",
    "door",
    "bridge",
    "pond",
    "fence",
    "road",
    "well",
    "garden gate",
    "old mill",
    "big rock",
    "meadow",
    "school",
    "market",
    "lighthouse",
    "cave",
    "station",
];
const FEELINGS: &[&str] = &[
    "happy",
    "sad",
    "surprised",
    "scared",
    "proud",
    "excited",
    "worried",
    "calm",
    "angry",
    "sleepy",
    "grateful",
    "confused",
    "hopeful",
];
const FRIENDS: &[&str] = &[
    "friend", "mom", "dad", "sister", "brother", "grandma", "grandpa", "aunt", "uncle", "neighbor",
    "teacher", "cousin",
];
const VERBS: &[&str] = &[
    "ran", "jumped", "walked", "hopped", "danced", "climbed", "swam", "rolled", "raced", "tiptoed",
    "marched", "skipped", "wandered", "flew",
];
const WEATHER: &[&str] = &[
    "sunny", "rainy", "windy", "cold", "warm", "foggy", "snowy", "cloudy", "bright", "stormy",
];
const TIMES: &[&str] = &[
    "In the morning",
    "After lunch",
    "That evening",
    "Later",
    "The next day",
    "Soon",
    "At night",
    "Before dinner",
    "On Sunday",
];

/// One story from the grammar.
pub fn story<R: Rng>(rng: &mut R) -> String {
    let name = pick(rng, NAMES);
    let friend_name = loop {
        let n = pick(rng, NAMES);
        if n != name {
            break n;
        }
    };
    let animal = pick(rng, ANIMALS);
    let thing = pick(rng, THINGS);
    let color = pick(rng, COLORS);
    let spot = pick(rng, SPOTS);
    let mut s = String::new();
    let opening = match rng.random_range(0..4) {
        0 => format!(
            "Once upon a time, there was a {} {animal} named {name}.",
            pick(rng, ADJS)
        ),
        1 => format!(
            "One {} day, a {} {animal} called {name} went out to play.",
            pick(rng, WEATHER),
            pick(rng, ADJS)
        ),
        2 => format!(
            "{name} was a {} {animal} who lived in {}.",
            pick(rng, ADJS),
            pick(rng, PLACES)
        ),
        _ => format!(
            "In {} there lived a {animal} named {name}.",
            pick(rng, PLACES)
        ),
    };
    s.push_str(&opening);
    let n = rng.random_range(3..8);
    for _ in 0..n {
        s.push(' ');
        let sentence = match rng.random_range(0..14) {
            0 => format!("{name} found a {color} {thing} near the {spot}."),
            1 => format!(
                "{name} loved to play with {} {}.",
                pronoun(rng),
                pick(rng, FRIENDS)
            ),
            2 => format!("\"Look at my {thing}!\" said {name} to {friend_name}."),
            3 => format!(
                "{friend_name} felt {} and gave {name} a hug.",
                pick(rng, FEELINGS)
            ),
            4 => format!(
                "They {} to the {} and looked at the {}.",
                pick(rng, VERBS),
                pick(rng, SPOTS),
                pick(rng, THINGS)
            ),
            5 => format!(
                "{name} was very {} because the {thing} was {color}.",
                pick(rng, FEELINGS)
            ),
            6 => format!("The {spot} was far away, but {name} did not give up."),
            7 => format!("{friend_name} asked, \"Can I play with the {thing} too?\""),
            8 => format!(
                "{} it was {}, so {name} {} to the {}.",
                pick(rng, TIMES),
                pick(rng, WEATHER),
                pick(rng, VERBS),
                pick(rng, SPOTS)
            ),
            9 => format!(
                "A {} {} {} past the {spot}.",
                pick(rng, ADJS),
                pick(rng, ANIMALS),
                pick(rng, VERBS)
            ),
            10 => format!(
                "{name} put the {thing} in a {} {}.",
                pick(rng, COLORS),
                pick(rng, THINGS)
            ),
            11 => format!("\"I am {},\" said {friend_name}.", pick(rng, FEELINGS)),
            12 => format!(
                "{name} and {friend_name} shared {} {} and laughed.",
                rng.random_range(2..10),
                pick(rng, THINGS)
            ),
            _ => format!(
                "{} {name} {} home with the {color} {thing}.",
                pick(rng, TIMES),
                pick(rng, VERBS)
            ),
        };
        s.push_str(&sentence);
    }
    let ending = match rng.random_range(0..4) {
        0 => format!(" In the end, {name} and {friend_name} were best friends."),
        1 => format!(" From that day on, {name} kept the {color} {thing} safe."),
        2 => format!(" {name} felt {} and fell asleep.", pick(rng, FEELINGS)),
        _ => format!(" {name} smiled and went home. The end."),
    };
    s.push_str(&ending);
    s.push('\n');
    s
}

fn pronoun<R: Rng>(rng: &mut R) -> &'static str {
    if rng.random_bool(0.5) {
        "her"
    } else {
        "his"
    }
}

/// Stories until at least `bytes` bytes, from `seed`.
pub fn stories(seed: u64, bytes: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(bytes + 512);
    while out.len() < bytes {
        out.push_str(&story(&mut rng));
    }
    out
}

/// An arithmetic problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Left operand.
    pub a: u64,
    /// Right operand.
    pub b: u64,
    /// `'+'` or `'-'` (subtraction problems have `a >= b`).
    pub op: char,
}

/// Answer formats, named by their control token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `D`: the answer right after `=`.
    Direct,
    /// `T`: the scratchpad, then `|` and the answer.
    Think,
}

impl Format {
    /// Both formats.
    pub const ALL: [Format; 2] = [Format::Direct, Format::Think];

    /// The control token that starts a line.
    pub fn control(self) -> char {
        match self {
            Format::Direct => 'D',
            Format::Think => 'T',
        }
    }

    /// Name used in records.
    pub fn name(self) -> &'static str {
        match self {
            Format::Direct => "direct",
            Format::Think => "think",
        }
    }
}

/// Difficulty buckets: the largest operand has this many digits.
pub const BUCKETS: [u32; 4] = [1, 2, 3, 4];

/// A problem of `bucket` digits: one operand has exactly `bucket` digits, the other 1 to
/// `bucket`; `+` or `-` with equal probability.
pub fn problem<R: Rng>(rng: &mut R, bucket: u32) -> Problem {
    let lo = if bucket == 1 {
        0
    } else {
        10u64.pow(bucket - 1)
    };
    let a = rng.random_range(lo..10u64.pow(bucket));
    let b_digits = rng.random_range(1..=bucket);
    let b = rng.random_range(0..10u64.pow(b_digits));
    let (a, b) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
    if rng.random_bool(0.5) {
        Problem { a, b, op: '+' }
    } else {
        Problem {
            a: a.max(b),
            b: a.min(b),
            op: '-',
        }
    }
}

impl Problem {
    /// The prompt up to and including `=`, with the control token: e.g. `T:347+85=`.
    pub fn prompt(&self, format: Format) -> String {
        format!("{}:{}{}{}=", format.control(), self.a, self.op, self.b)
    }

    /// What a correct model writes after the prompt, up to and including the newline.
    pub fn completion(&self, format: Format) -> String {
        match format {
            Format::Direct => format!("{}\n", self.digitwise()),
            Format::Think => format!("{}|{}\n", self.scratchpad(), self.digitwise()),
        }
    }

    /// The whole training line.
    pub fn line(&self, format: Format) -> String {
        self.prompt(format) + &self.completion(format)
    }

    fn digits(&self) -> (Vec<u32>, Vec<u32>) {
        let width = self.a.to_string().len().max(self.b.to_string().len());
        let rev = |x: u64| -> Vec<u32> {
            let s = format!("{x:0width$}");
            s.chars()
                .rev()
                .map(|c| c.to_digit(10).expect("digit"))
                .collect()
        };
        (rev(self.a), rev(self.b))
    }

    /// The scratchpad steps, least significant digit first.
    fn scratchpad(&self) -> String {
        let (a, b) = self.digits();
        let mut carry = 0;
        let mut partial = String::new();
        let mut steps = Vec::new();
        for (&x, &y) in a.iter().zip(&b) {
            let (d, next) = if self.op == '+' {
                let s = x + y + carry;
                (s % 10, s / 10)
            } else {
                let s = x as i32 - y as i32 - carry as i32;
                if s < 0 {
                    ((s + 10) as u32, 1)
                } else {
                    (s as u32, 0)
                }
            };
            partial.insert(0, char::from_digit(d, 10).expect("digit"));
            let flag = if self.op == '+' { 'c' } else { 'b' };
            steps.push(format!(
                "{x}{}{y}{}{carry}={d}{flag}{next}:{partial}",
                self.op, self.op
            ));
            carry = next;
        }
        steps.join(" ")
    }

    /// The answer as the scratchpad derives it: the final partial, with the last carry in front
    /// (addition) and leading zeros dropped.
    fn digitwise(&self) -> String {
        let (a, b) = self.digits();
        let mut carry = 0i32;
        let mut out = Vec::new();
        for (&x, &y) in a.iter().zip(&b) {
            let s = if self.op == '+' {
                x as i32 + y as i32 + carry
            } else {
                x as i32 - y as i32 - carry
            };
            let (d, next) = match s {
                s if s >= 10 => (s - 10, 1),
                s if s < 0 => (s + 10, 1),
                s => (s, 0),
            };
            out.push(d as u8);
            carry = next;
        }
        if self.op == '+' && carry == 1 {
            out.push(1);
        }
        while out.len() > 1 && *out.last().expect("nonempty") == 0 {
            out.pop();
        }
        out.iter().rev().map(|d| char::from(b'0' + d)).collect()
    }
}

/// Arithmetic lines (both formats, all buckets, in equal shares) until at least `bytes` bytes.
pub fn arithmetic(seed: u64, bytes: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(bytes + 128);
    while out.len() < bytes {
        let bucket = BUCKETS[rng.random_range(0..BUCKETS.len())];
        let format = Format::ALL[rng.random_range(0..2)];
        out.push_str(&problem(&mut rng, bucket).line(format));
    }
    out
}

/// Checks a generated completion against integer arithmetic on the prompt. The answer is the
/// text after the prompt's `=` (direct) or after the last `|` (think), up to the newline.
/// Returns `None` when the prompt itself is malformed.
pub fn check_answer(prompt: &str, completion: &str) -> Option<bool> {
    let body = prompt.get(2..)?.strip_suffix('=')?;
    let (op_at, op) = body
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')?;
    let a: i64 = body[..op_at].parse().ok()?;
    let b: i64 = body[op_at + 1..].parse().ok()?;
    let truth = if op == '+' { a + b } else { a - b };
    let line = completion.split('\n').next().unwrap_or("");
    let answer = if prompt.starts_with('T') {
        match line.rsplit_once('|') {
            Some((_, ans)) => ans,
            None => return Some(false),
        }
    } else {
        line
    };
    Some(answer.parse::<i64>().ok() == Some(truth))
}

/// A train/validation pair of texts for a corpus, each from its own fixed seed.
#[derive(Clone, Debug)]
pub struct Split {
    /// Training text.
    pub train: String,
    /// Validation text (never trained on).
    pub valid: String,
    /// How it was made, for the checkpoint card.
    pub source: String,
}

/// Seeds of the fixed splits (validation never shares a stream with training).
const TRAIN_SEED: u64 = 1;
const VALID_SEED: u64 = 2;

/// The stories split: 2 MB of training text, 64 KB of validation text.
pub fn stories_split() -> Split {
    Split {
        train: stories(TRAIN_SEED, 2 << 20),
        valid: stories(VALID_SEED, 64 << 10),
        source: format!("stories grammar, train seed {TRAIN_SEED} (2 MiB), validation seed {VALID_SEED} (64 KiB)"),
    }
}

/// The arithmetic split: 2 MB of training lines, 64 KB of validation lines.
pub fn arithmetic_split() -> Split {
    Split {
        train: arithmetic(TRAIN_SEED, 2 << 20),
        valid: arithmetic(VALID_SEED, 64 << 10),
        source: format!("arithmetic generator, train seed {TRAIN_SEED} (2 MiB), validation seed {VALID_SEED} (64 KiB)"),
    }
}

/// Reads a UTF-8 text file, or says which file is unreadable or where its UTF-8 breaks.
pub fn read_text(path: &std::path::Path) -> crate::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        crate::SuiteError::Input(format!("cannot read text {}: {e}", path.display()))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        crate::SuiteError::Input(format!(
            "text {} is not UTF-8 (first bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(crate::SuiteError::Input(format!(
            "text {} is empty",
            path.display()
        )));
    }
    Ok(text)
}

/// A user's UTF-8 text file, split 95/5 at a line boundary.
pub fn file_split(path: &std::path::Path) -> crate::Result<Split> {
    let text = read_text(path)?;
    if text.len() < 4096 {
        return Err(crate::SuiteError::Input(format!(
            "corpus {} has {} bytes; at least 4096 are needed for a train/validation split",
            path.display(),
            text.len()
        )));
    }
    let mut cut = text.len() * 95 / 100;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    if let Some(nl) = text[cut..].find('\n') {
        cut += nl + 1;
    }
    if cut >= text.len() {
        cut = text.len() * 95 / 100;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
    }
    Ok(Split {
        train: text[..cut].to_string(),
        valid: text[cut..].to_string(),
        source: format!("file {} (95/5 split)", path.display()),
    })
}

/// Perplexity of the unigram (byte frequency) model fitted on `train`, on `valid`, with add-one
/// smoothing: the baseline a trained model must beat.
pub fn unigram_perplexity(train: &str, valid: &str) -> f64 {
    let mut counts = [1f64; 256];
    for b in train.bytes() {
        counts[b as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let nll: f64 = valid
        .bytes()
        .map(|b| -(counts[b as usize] / total).ln())
        .sum::<f64>()
        / valid.len() as f64;
    nll.exp()
}
