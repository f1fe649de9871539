//! `RetryLayer`, `Retry<S>` and `RetryFuture`: the retry loop on the request path.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use mesh_core::BoxError;
use mesh_core::classify::{Failure, FailureError, Outcome};
use mesh_core::extensions::{AttemptDeadline, Attempts};
use mesh_core::random::Random;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::policy::RetryPolicy;
use super::replay::{DEFAULT_MAX_REPLAY_BUFFER, ReplayBody};
use crate::breaker::{CircuitBreaker, RequestPermit, RetryBudget, RetryPermit};

/// The request header carrying the 1-based attempt number (RETRY-11).
const ATTEMPT_COUNT: &str = "x-envoy-attempt-count";

/// Response extension: a retry was wanted but `attempts` were used up; this is the last
/// attempt's response (flag `URX`, RETRY-7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryExhausted;

/// Response extension: a retry was wanted but the retry limit (`maxRetries` or the retry
/// budget) refused it; this is the last attempt's response (flag `UO`, RETRY-12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryOverflow;

/// The error of a retried request whose last attempt failed without a response, when the
/// retry loop stopped for a reason the access log reports (`URX` or `UO`). The last attempt's
/// error is its [`source`](std::error::Error::source), so
/// [`failure_of`](mesh_core::classify::failure_of) still sees what happened.
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.overflow { "retry overflow" } else { "retry limit exceeded" })]
pub struct RetryError {
    overflow: bool,
    #[source]
    source: BoxError,
}

impl RetryError {
    /// Whether `attempts` were used up (`URX`).
    pub fn is_exhausted(&self) -> bool {
        !self.overflow
    }

    /// Whether the retry limit refused the retry (`UO`).
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }

    /// The last attempt's error.
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

/// A [`RetryFuture`] was polled after it completed.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("retry future polled after completion")]
struct PolledAfterCompletion;

/// Retries failed attempts by a route's [`RetryPolicy`] (see the [module docs](super)).
///
/// By default the layer has its own [`CircuitBreaker`] with Envoy's retry budget (20 % of
/// active requests, at least 3 concurrent retries; SEMANTICS RES-4) and counts each attempt
/// as an active request itself. With [`RetryLayer::breaker`] it uses a cluster's breaker
/// instead, shared with a [`CircuitBreakerLayer`](crate::breaker::CircuitBreakerLayer) below
/// it that counts the requests; the retry layer then only asks for retry permits.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
    breaker: CircuitBreaker,
    count_requests: bool,
    max_replay_buffer: usize,
    seed: Option<u64>,
}

impl RetryLayer {
    /// A layer retrying by `policy`, with its own retry budget (RES-4) and a 64 KiB replay
    /// buffer ([`DEFAULT_MAX_REPLAY_BUFFER`]).
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            breaker: CircuitBreaker::unlimited().with_retry_budget(RetryBudget::envoy_default()),
            count_requests: true,
            max_replay_buffer: DEFAULT_MAX_REPLAY_BUFFER,
            seed: None,
        }
    }

    /// Asks `breaker` for each retry (`maxRetries` or its retry budget, RETRY-12) instead of
    /// the layer's own budget. The layer then does not count attempts as requests: place a
    /// [`CircuitBreakerLayer`](crate::breaker::CircuitBreakerLayer) with the same breaker
    /// below it, per attempt (RES-5).
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = breaker;
        self.count_requests = false;
        self
    }

    /// Bytes of request body kept for replay (0: requests with a body are never retried).
    pub fn max_replay_buffer(mut self, bytes: usize) -> Self {
        self.max_replay_buffer = bytes;
        self
    }

    /// Seeds the back-off jitter (tests); by default it draws from the thread's generator.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            config: Arc::new(Config {
                policy: Arc::clone(&self.policy),
                breaker: self.breaker.clone(),
                count_requests: self.count_requests,
                max_replay_buffer: self.max_replay_buffer,
            }),
            rng: self.seed.map_or_else(Random::thread, Random::seeded),
        }
    }
}

/// What every request of one [`Retry`] service shares (one `Arc` clone per request).
#[derive(Debug)]
struct Config {
    policy: Arc<RetryPolicy>,
    breaker: CircuitBreaker,
    count_requests: bool,
    max_replay_buffer: usize,
}

/// The service of [`RetryLayer`].
///
/// Each request's body becomes a [`ReplayBody`]; each attempt carries
/// `x-envoy-attempt-count` (RETRY-11) and shares the request's
/// [`Attempts`] extension (inserted when absent) with the layers below,
/// so a balancer can avoid the hosts already tried (RETRY-13).
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    config: Arc<Config>,
    rng: Random,
}

impl<S> Retry<S> {
    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.config.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Retry<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: http_body::Body,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = RetryFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> RetryFuture<S, B> {
        // The ready service handles the first attempt and stays with the future for the
        // retries; `self` keeps a fresh clone, which must be polled ready again (tower).
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        let (mut parts, body) = req.into_parts();
        let attempts = match parts.extensions.get::<Attempts>() {
            Some(a) => a.clone(),
            None => {
                // RETRY-13: unset `retryIgnorePreviousHosts` depends on the destination's
                // balancer, which routing below knows.
                let (plain, hashed) = (
                    config.policy.avoid_previous_hosts(false),
                    config.policy.avoid_previous_hosts(true),
                );
                let a = if plain == hashed {
                    Attempts::new(plain)
                } else {
                    Attempts::unless_hashed()
                };
                parts.extensions.insert(a.clone());
                a
            }
        };
        let retries = config.policy.max_retries() > 0;
        let buffer = if retries { config.max_replay_buffer } else { 0 };
        let body = ReplayBody::new(body, buffer);
        let replay = body.try_clone();
        // The request is kept (without its body) only when a retry can happen.
        let template = replay.as_ref().map(|_| parts.clone());
        let mut ctx = Ctx {
            template,
            replay,
            attempts,
            rng: Random::seeded(self.rng.next_u64()),
            retries: 0,
            request_permit: None,
            retry_permit: None,
            pending: None,
            config,
        };
        let state = ctx.start(&mut service, Request::from_parts(parts, body));
        RetryFuture {
            state,
            service,
            ctx,
        }
    }
}

pin_project! {
    /// The future of [`Retry`]: the attempt in flight, the back-off, or the wait for the
    /// inner service to be ready for the next attempt.
    ///
    /// Dropping it (the route timeout fired or the client went away) drops the attempt in
    /// flight, which resets the upstream request, and releases the request and retry permits
    /// it holds; no further attempt is made.
    pub struct RetryFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        ctx: Ctx<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        /// An attempt is in flight, under its per-try timer if any.
        Calling {
            #[pin]
            future: F,
            #[pin]
            per_try: Option<Sleep>,
        },
        /// Waiting out the back-off before the next attempt (RETRY-10).
        Backoff {
            #[pin]
            sleep: Sleep,
        },
        /// Waiting for the inner service to accept the next attempt.
        Ready,
        Done,
    }
}

/// The per-request state that is not pinned.
struct Ctx<B> {
    config: Arc<Config>,
    /// The request without its body, for the retries; `None` when none can happen.
    template: Option<http::request::Parts>,
    /// A handle on the replayable body, from which each retry takes its copy.
    replay: Option<ReplayBody<B>>,
    attempts: Attempts,
    rng: Random,
    /// Retries made so far.
    retries: u32,
    /// The attempt in flight as an active request, when the layer counts them.
    request_permit: Option<RequestPermit>,
    /// The retry in flight (RETRY-12): held from the decision to retry to the retry's end.
    retry_permit: Option<RetryPermit>,
    /// The next attempt's request, during the back-off and the readiness wait.
    pending: Option<Request<ReplayBody<B>>>,
}

enum Decision<T> {
    Return(T),
    Retry(Duration),
}

impl<B> Ctx<B> {
    /// Sends one attempt on a ready `service`.
    fn start<S>(&mut self, service: &mut S, mut req: Request<ReplayBody<B>>) -> State<S::Future>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        if self.config.count_requests {
            // The layer's own breaker has no request limit: the count only feeds the budget.
            self.request_permit = self.config.breaker.try_request().ok();
        }
        let n = self.attempts.next_attempt();
        req.headers_mut().insert(ATTEMPT_COUNT, attempt_count(n));
        let per_try = self.config.policy.per_try_timeout();
        if let Some(t) = per_try {
            // Lets outlier detection below count an attempt the per-try timer cuts short.
            AttemptDeadline::tighten(
                req.extensions_mut(),
                AttemptDeadline::new(tokio::time::Instant::now() + t, true),
            );
        }
        State::Calling {
            future: service.call(req),
            per_try: per_try.map(tokio::time::sleep),
        }
    }

    /// What to do once an attempt ended with `result`.
    fn decide<RB>(
        &mut self,
        result: Result<Response<RB>, BoxError>,
    ) -> Decision<Result<Response<RB>, BoxError>> {
        self.request_permit = None;
        self.retry_permit = None;
        let outcome = match &result {
            Ok(resp) => Outcome::from_response(resp),
            Err(e) => Outcome::from_error(&**e),
        };
        let policy = &self.config.policy;
        if !policy.should_retry(&outcome, result.as_ref().ok().map(Response::headers)) {
            return Decision::Return(result);
        }
        let (Some(template), Some(replay)) = (&self.template, &self.replay) else {
            return Decision::Return(result);
        };
        if !replay.is_replayable() {
            // RETRY-7 (ours): the body outgrew the replay buffer; it was sent once.
            tracing::debug!(?outcome, "not retrying: request body too large to replay");
            return Decision::Return(result);
        }
        if self.retries >= policy.max_retries() {
            tracing::debug!(?outcome, retries = self.retries, "retry limit exceeded");
            return Decision::Return(mark(result, false));
        }
        match self.config.breaker.try_retry() {
            Ok(permit) => self.retry_permit = Some(permit),
            Err(denied) => {
                tracing::debug!(?outcome, budget = denied.budget, "retry overflow");
                return Decision::Return(mark(result, true));
            }
        }
        let Some(body) = replay.try_clone() else {
            self.retry_permit = None;
            return Decision::Return(result);
        };
        self.retries += 1;
        self.pending = Some(Request::from_parts(template.clone(), body));
        let backoff = policy.backoff(self.retries, &mut self.rng);
        tracing::debug!(?outcome, retry = self.retries, ?backoff, "retrying request");
        // The failed attempt's response (and its connection) goes now.
        drop(result);
        Decision::Retry(backoff)
    }
}

/// Marks the last result of a stopped retry loop: `URX` (`overflow` false) or `UO`.
fn mark<RB>(
    result: Result<Response<RB>, BoxError>,
    overflow: bool,
) -> Result<Response<RB>, BoxError> {
    match result {
        Ok(mut resp) => {
            if overflow {
                resp.extensions_mut().insert(RetryOverflow);
            } else {
                resp.extensions_mut().insert(RetryExhausted);
            }
            Ok(resp)
        }
        Err(source) => Err(Box::new(RetryError { overflow, source })),
    }
}

impl<S, B, RB> Future for RetryFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future, per_try } => {
                    let result = match future.poll(cx) {
                        Poll::Ready(r) => r.map_err(Into::into),
                        Poll::Pending => match per_try.as_pin_mut().map(|s| s.poll(cx)) {
                            // RETRY-8: the attempt is reset (dropped just below) and counts
                            // as a per-try timeout.
                            Some(Poll::Ready(())) => {
                                Err(Box::new(FailureError(Failure::PerTryTimeout)) as BoxError)
                            }
                            _ => return Poll::Pending,
                        },
                    };
                    match this.ctx.decide(result) {
                        Decision::Return(r) => {
                            this.state.set(State::Done);
                            return Poll::Ready(r);
                        }
                        Decision::Retry(backoff) => this.state.set(State::Backoff {
                            sleep: tokio::time::sleep(backoff),
                        }),
                    }
                }
                StateProj::Backoff { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        this.ctx.retry_permit = None;
                        this.state.set(State::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let Some(req) = this.ctx.pending.take() else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    let next = this.ctx.start(this.service, req);
                    this.state.set(next);
                }
                StateProj::Done => return Poll::Ready(Err(PolledAfterCompletion.into())),
            }
        }
    }
}

impl<S, B> fmt::Debug for RetryFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::Backoff { .. } => "backoff",
            State::Ready => "ready",
            State::Done => "done",
        };
        f.debug_struct("RetryFuture")
            .field("state", &state)
            .field("retries", &self.ctx.retries)
            .finish_non_exhaustive()
    }
}

/// The `x-envoy-attempt-count` value for attempt `n`: a static value for the usual small
/// numbers (no allocation per request), a formatted one beyond.
pub fn attempt_count(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(n as usize) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(n),
    }
}
