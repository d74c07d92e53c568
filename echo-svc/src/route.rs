//! Which route a request path is, as a fixed template: what the handlers dispatch on and
//! what the `route` metric label says (never the raw path, so clients cannot mint series).
//! Its own module so routing and metrics both use it without depending on each other.

/// A route template; also the `route` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// `/`
    Root,
    /// `/healthz`
    Healthz,
    /// `/readyz`
    Readyz,
    /// `/health`
    Health,
    /// `/version`
    Version,
    /// `/identity`
    Identity,
    /// `/readyz/enable`
    ReadyzEnable,
    /// `/readyz/disable`
    ReadyzDisable,
    /// `/fault`
    Fault,
    /// `/fault/enable`
    FaultEnable,
    /// `/fault/disable`
    FaultDisable,
    /// `/stall`
    Stall,
    /// `/echo`
    Echo,
    /// `/call/{name}`
    Call,
    /// `/metrics`
    Metrics,
    /// Anything else.
    NotFound,
}

impl Route {
    /// Classify a request path.
    #[inline]
    pub fn classify(path: &str) -> Route {
        match path {
            "/" => Route::Root,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/health" => Route::Health,
            "/version" => Route::Version,
            "/identity" => Route::Identity,
            "/readyz/enable" => Route::ReadyzEnable,
            "/readyz/disable" => Route::ReadyzDisable,
            "/fault" => Route::Fault,
            "/fault/enable" => Route::FaultEnable,
            "/fault/disable" => Route::FaultDisable,
            "/stall" => Route::Stall,
            "/echo" => Route::Echo,
            "/metrics" => Route::Metrics,
            p if p.starts_with("/call/") => Route::Call,
            _ => Route::NotFound,
        }
    }

    /// The template used as the metric label.
    pub fn template(self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Health => "/health",
            Route::Version => "/version",
            Route::Identity => "/identity",
            Route::ReadyzEnable => "/readyz/enable",
            Route::ReadyzDisable => "/readyz/disable",
            Route::Fault => "/fault",
            Route::FaultEnable => "/fault/enable",
            Route::FaultDisable => "/fault/disable",
            Route::Stall => "/stall",
            Route::Echo => "/echo",
            Route::Call => "/call/{name}",
            Route::Metrics => "/metrics",
            Route::NotFound => "unmatched",
        }
    }

    /// Demo toggles: subject to `--enable-toggles` and `--admin-port`.
    pub(crate) fn is_toggle(self) -> bool {
        matches!(
            self,
            Route::ReadyzEnable
                | Route::ReadyzDisable
                | Route::FaultEnable
                | Route::FaultDisable
                | Route::Stall
        )
    }

    /// Routes that the fault switch and the server-wide default faults affect: everything
    /// except probes, `/metrics` and the switches themselves.
    pub(crate) fn is_workload(self) -> bool {
        matches!(
            self,
            Route::Root
                | Route::Version
                | Route::Identity
                | Route::Echo
                | Route::Call
                | Route::NotFound
        )
    }

    /// Routes a stall holds: all but `/metrics` and the switches (so a stall can be ended).
    pub(crate) fn is_held_by_stall(self) -> bool {
        !matches!(self, Route::Metrics | Route::Fault) && !self.is_toggle()
    }
}
