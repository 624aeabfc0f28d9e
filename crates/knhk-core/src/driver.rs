//! A driver of [`Case::apply`] for tests and simulations (feature `test-support`): one case,
//! a clock that moves one millisecond per input, the whole history and every effect recorded,
//! and a run to quiescence that answers what the case waits for through a [`Policy`].
//!
//! The semantics tests, the pattern runs and the property tests all drive cases through it, and
//! a simulation (`knhk simulate`) is [`Driver::run`] with the [`Simulated`] policy.

use std::borrow::Borrow;

use serde_json::{Map, Value};

use crate::case::{Case, Step, Wait};
use crate::effect::Effect;
use crate::error::Error;
use crate::event::{CaseStatus, Event};
use crate::ids::{CaseId, SequentialIds, Timestamp};
use crate::input::Input;
use crate::step::ApplyOptions;
use crate::workflow::Workflow;

/// One case of a workflow, driven input by input, with its history. `W` is how the driver
/// holds the workflow: borrowed (`&Workflow`), owned (`Workflow`) or shared (`Arc<Workflow>`).
#[derive(Clone, Debug)]
pub struct Driver<W> {
    workflow: W,
    case: Case,
    ids: SequentialIds,
    history: Vec<Event>,
    effects: Vec<Effect>,
    now: Timestamp,
    options: ApplyOptions,
}

/// How a case should answer what it waits for, in a [`Driver::run`].
pub trait Policy {
    /// Returns the input that answers `wait`, or `None` to leave it unanswered (the run then
    /// stops there if nothing else can move).
    fn answer(&mut self, case: &Case, wait: &Wait) -> Option<Input>;

    /// Returns another input to try after `input` was refused with `error`, or `None` to give
    /// up (the run then returns the error). `attempt` counts the refusals so far, from 1.
    fn retry(
        &mut self,
        _wait: &Wait,
        _input: &Input,
        _error: &Error,
        _attempt: u32,
    ) -> Option<Input> {
        None
    }
}

/// Where a [`Driver::run`] stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Quiescence {
    /// The case ended in this state.
    Ended(CaseStatus),
    /// The case waits for these, and the policy answered none of them.
    Waiting(Vec<Wait>),
    /// The run fed its maximum of inputs and the case still moves (a loop that never exits).
    TooManyInputs,
}

/// What the simulated outside world does with a connector call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallAnswer {
    /// Leaves it in flight: the run stops there.
    Leave,
    /// Answers with this output.
    Succeed(Value),
    /// Fails the call with this error.
    Fail(String),
}

/// A [`Policy`] standing in for people, connectors, the outside world and the clock: a user
/// completes every human work item with `output` (another user takes a four-eyes item this
/// one may not complete), connector calls and triggers are answered as configured, and timers
/// fire when nothing else can move.
#[derive(Clone, Debug)]
pub struct Simulated {
    /// The user who completes human work items; `USER-2`, `USER-3`... take four-eyes items.
    pub user: String,
    /// The output of every completed work item.
    pub output: Value,
    pub calls: CallAnswer,
    /// The data sent for an awaited trigger event; `None` leaves triggers unanswered.
    pub triggers: Option<Value>,
    /// Whether timers fire.
    pub timers: bool,
}

impl Default for Simulated {
    /// Completes work items as `simulator` with `{}`, fires timers, and leaves connector calls
    /// and triggers to the outside world.
    fn default() -> Simulated {
        Simulated {
            user: "simulator".to_owned(),
            output: Value::Object(Map::new()),
            calls: CallAnswer::Leave,
            triggers: None,
            timers: true,
        }
    }
}

impl Policy for Simulated {
    fn answer(&mut self, _case: &Case, wait: &Wait) -> Option<Input> {
        match wait {
            Wait::Start => Some(Input::Start),
            Wait::Resume => Some(Input::Resume),
            Wait::WorkItem { item, .. } => Some(Input::CompleteWorkItem {
                item: *item,
                user: self.user.clone(),
                output: self.output.clone(),
            }),
            Wait::Call { item, .. } => match &self.calls {
                CallAnswer::Leave => None,
                CallAnswer::Succeed(output) => Some(Input::ConnectorSucceeded {
                    item: *item,
                    output: output.clone(),
                    failed_attempts: Vec::new(),
                }),
                CallAnswer::Fail(error) => Some(Input::ConnectorFailed {
                    item: *item,
                    error: error.clone(),
                    failed_attempts: Vec::new(),
                }),
            },
            Wait::Timer { timer, .. } => self.timers.then_some(Input::TimerFired { timer: *timer }),
            // Retrying a failed task is an operator's decision.
            Wait::Retry { .. } => None,
            Wait::Trigger { event, .. } => {
                self.triggers.as_ref().map(|data| Input::TriggerReceived {
                    event: event.clone(),
                    data: data.clone(),
                })
            }
        }
    }

    fn retry(&mut self, _wait: &Wait, input: &Input, error: &Error, attempt: u32) -> Option<Input> {
        match (input, error) {
            (Input::CompleteWorkItem { item, output, .. }, Error::FourEyes { .. })
                if attempt < 100 =>
            {
                Some(Input::CompleteWorkItem {
                    item: *item,
                    user: format!("{}-{}", self.user, attempt + 1),
                    output: output.clone(),
                })
            }
            _ => None,
        }
    }
}

impl<W: Borrow<Workflow>> Driver<W> {
    /// Creates a case of `workflow` holding `data` at time `now`, without starting it.
    pub fn create(workflow: W, id: CaseId, now: Timestamp, data: Map<String, Value>) -> Driver<W> {
        let (case, step) = Case::create(workflow.borrow(), id, now, data);
        Driver {
            workflow,
            case,
            ids: SequentialIds::default(),
            history: step.events,
            effects: step.effects,
            now,
            options: ApplyOptions::default(),
        }
    }

    /// Creates a case and starts it one millisecond later.
    pub fn start(
        workflow: W,
        id: CaseId,
        now: Timestamp,
        data: Map<String, Value>,
    ) -> Result<Driver<W>, Error> {
        let mut driver = Driver::create(workflow, id, now, data);
        driver.apply(Input::Start)?;
        Ok(driver)
    }

    /// Sets the options of every later step.
    pub fn set_options(&mut self, options: ApplyOptions) {
        self.options = options;
    }

    /// Applies `input` one millisecond after the previous one and records its events and
    /// effects. A refused input changes nothing, not even the clock.
    pub fn apply(&mut self, input: Input) -> Result<Step, Error> {
        let now = self.now.plus_millis(1);
        self.apply_at(now, input)
    }

    /// Applies `input` at `now` (never earlier than the previous input) and records it.
    pub fn apply_at(&mut self, now: Timestamp, input: Input) -> Result<Step, Error> {
        let now = now.max(self.now);
        let step = self.case.apply_with(
            self.workflow.borrow(),
            now,
            input,
            &mut self.ids,
            self.options,
        )?;
        self.now = now;
        self.history.extend(step.events.iter().cloned());
        self.effects.extend(step.effects.iter().cloned());
        Ok(step)
    }

    /// Runs the case until it ends or waits only for what `policy` leaves unanswered, feeding
    /// at most `max_inputs` inputs. Answers are tried in the order of [`Case::waits`], timers
    /// last: a timer fires (the clock jumping to its due time) only when nothing else moves.
    pub fn run(
        &mut self,
        policy: &mut impl Policy,
        max_inputs: usize,
    ) -> Result<Quiescence, Error> {
        for _ in 0..max_inputs {
            let status = self.case.status();
            if status.is_final() {
                return Ok(Quiescence::Ended(status));
            }
            let waits = self.case.waits(self.workflow.borrow());
            let now_waits = waits.iter().filter(|w| !matches!(w, Wait::Timer { .. }));
            let mut timers: Vec<&Wait> = waits
                .iter()
                .filter(|w| matches!(w, Wait::Timer { .. }))
                .collect();
            timers.sort_by_key(|w| match w {
                Wait::Timer { fires_at, .. } => *fires_at,
                _ => Timestamp::default(),
            });
            let answer = now_waits
                .chain(timers)
                .find_map(|w| policy.answer(&self.case, w).map(|input| (w.clone(), input)));
            let Some((wait, input)) = answer else {
                return Ok(Quiescence::Waiting(waits));
            };
            let at = match wait {
                Wait::Timer { fires_at, .. } => fires_at,
                _ => self.now.plus_millis(1),
            };
            self.answer(policy, &wait, at, input)?;
        }
        let status = self.case.status();
        Ok(if status.is_final() {
            Quiescence::Ended(status)
        } else {
            Quiescence::TooManyInputs
        })
    }

    fn answer(
        &mut self,
        policy: &mut impl Policy,
        wait: &Wait,
        at: Timestamp,
        mut input: Input,
    ) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match self.apply_at(at, input.clone()) {
                Ok(_) => return Ok(()),
                Err(error) => {
                    attempt += 1;
                    match policy.retry(wait, &input, &error, attempt) {
                        Some(next) => input = next,
                        None => return Err(error),
                    }
                }
            }
        }
    }

    /// Checks that the history runs from sequence number 1 without gaps and that replaying it
    /// rebuilds exactly this case; returns what differs otherwise.
    pub fn check_replay(&self) -> Result<(), String> {
        for (i, e) in self.history.iter().enumerate() {
            if e.seq != i as u64 + 1 {
                return Err(format!("history has a gap at position {i}: seq {}", e.seq));
            }
        }
        let replayed = Case::replay(self.workflow.borrow(), self.case.id(), &self.history)
            .map_err(|e| format!("replay failed: {e}"))?;
        if replayed != self.case {
            return Err(format!(
                "replay differs: replayed {replayed:?}, driven {:?}",
                self.case
            ));
        }
        Ok(())
    }

    pub fn workflow(&self) -> &Workflow {
        self.workflow.borrow()
    }

    pub fn case(&self) -> &Case {
        &self.case
    }

    /// Returns every event of the case so far, from its creation.
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    /// Returns every effect returned so far, in order.
    pub fn effects(&self) -> &[Effect] {
        &self.effects
    }

    /// Returns the time of the last input.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Returns the case and its whole history.
    pub fn into_parts(self) -> (Case, Vec<Event>) {
        (self.case, self.history)
    }
}
