//! The nets the benchmarks build as data: chains, fans, skewed blocks, blocks in series and
//! nested as a tree, with OR joins (and OR splits) or their AND twins. Shared by `orjoin` and
//! `scale`; each uses what it needs.

#![allow(dead_code)]

use knhk_core::model::{Condition, ControlType, Flow, Net, Task};
use knhk_core::{NetId, Specification};

use ControlType::{And, Or, Xor};

pub fn flow(to: &str) -> Flow {
    Flow {
        to: to.into(),
        predicate: None,
        ordering: None,
        is_default: false,
        on_failure: false,
    }
}

pub fn task(id: &str, join: ControlType, split: ControlType, to: &[&str]) -> Task {
    let mut task = Task::empty(id);
    task.join = join;
    task.split = split;
    task.flows = to.iter().map(|t| flow(t)).collect();
    task
}

pub fn specification(id: &str, first: &str, tasks: Vec<Task>) -> Specification {
    specification_with(id, first, Vec::new(), tasks)
}

pub fn specification_with(
    id: &str,
    first: &str,
    conditions: Vec<Condition>,
    tasks: Vec<Task>,
) -> Specification {
    let condition = |id: &str, flows| Condition {
        id: id.into(),
        name: None,
        flows,
    };
    Specification {
        id: id.to_owned(),
        name: None,
        version: None,
        documentation: None,
        root_net: NetId::new("net"),
        nets: vec![Net {
            id: NetId::new("net"),
            name: None,
            input_condition: condition("start", vec![flow(first)]),
            output_condition: condition("end", Vec::new()),
            conditions,
            tasks,
        }],
        initial_data: Default::default(),
    }
}

/// A chain `prefix1 -> ... -> prefixN -> next` of empty tasks; returns its first task.
pub fn chain(tasks: &mut Vec<Task>, prefix: &str, n: usize, next: &str) -> String {
    for i in 1..=n {
        let to = if i == n {
            next.to_owned()
        } else {
            format!("{prefix}{}", i + 1)
        };
        tasks.push(task(&format!("{prefix}{i}"), Xor, Xor, &[&to]));
    }
    format!("{prefix}1")
}

/// An OR (or AND) split into `branches` chains of `len` tasks and one join over them.
pub fn fan(join: ControlType, branches: usize, len: usize) -> Specification {
    let mut tasks = Vec::new();
    let firsts: Vec<String> = (0..branches)
        .map(|b| chain(&mut tasks, &format!("c{b}_"), len, "join"))
        .collect();
    let firsts: Vec<&str> = firsts.iter().map(String::as_str).collect();
    tasks.insert(0, task("split", Xor, split_of(join), &firsts));
    tasks.push(task("join", join, Xor, &["end"]));
    specification("fan", "split", tasks)
}

pub fn split_of(join: ControlType) -> ControlType {
    if join == And { And } else { Or }
}

/// One block: a short branch of one task and a chain of `k` tasks, listed split first
/// (with the flow) or join first (against it).
pub fn skewed(join: ControlType, k: usize, with_flow: bool) -> Specification {
    let mut tasks = vec![task("split", Xor, split_of(join), &["short", "c1"])];
    tasks.push(task("short", Xor, Xor, &["join"]));
    chain(&mut tasks, "c", k, "join");
    tasks.push(task("join", join, Xor, &["end"]));
    if !with_flow {
        tasks.reverse();
    }
    specification("skewed", "split", tasks)
}

/// `n` blocks in series, each a split into two one-task branches and a join.
pub fn series(join: ControlType, n: usize) -> Specification {
    let mut tasks = Vec::new();
    for i in 0..n {
        let next = if i + 1 == n {
            "end".to_owned()
        } else {
            format!("s{}", i + 1)
        };
        let (a, b, j) = (format!("a{i}"), format!("b{i}"), format!("j{i}"));
        tasks.push(task(&format!("s{i}"), Xor, split_of(join), &[&a, &b]));
        tasks.push(task(&a, Xor, Xor, &[&j]));
        tasks.push(task(&b, Xor, Xor, &[&j]));
        tasks.push(task(&j, join, Xor, &[&next]));
    }
    specification("series", "s0", tasks)
}

/// A block nested `depth` levels deep: each level splits into two blocks one level less
/// deep and joins them; level 0 is one task. Returns the block's first task.
pub fn nest(tasks: &mut Vec<Task>, join: ControlType, depth: u32, at: &str, next: &str) -> String {
    if depth == 0 {
        tasks.push(task(&format!("t{at}"), Xor, Xor, &[next]));
        return format!("t{at}");
    }
    let (split, joint) = (format!("s{at}"), format!("j{at}"));
    let left = nest(tasks, join, depth - 1, &format!("{at}l"), &joint);
    let right = nest(tasks, join, depth - 1, &format!("{at}r"), &joint);
    tasks.push(task(&split, Xor, split_of(join), &[&left, &right]));
    tasks.push(task(&joint, join, Xor, &[next]));
    split
}

pub fn tree(join: ControlType, depth: u32) -> Specification {
    let mut tasks = Vec::new();
    let first = nest(&mut tasks, join, depth, "", "end");
    specification("tree", &first, tasks)
}
