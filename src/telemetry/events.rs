//! Every label value of a fixed-enum metric label, defined once. Call sites name a variant, never
//! a string, so a typo cannot mint a new series; `ALL` lets `Metrics::new` create every series
//! at zero, so an alert on the first failure does not read "no data".

macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }
    };
}

label_enum! {
    /// `result` of `streetgate_snapshot_fetch_total`.
    SnapshotFetch {
        Ok => "ok",
        NotModified => "not_modified",
        Error => "error",
        Invalid => "invalid",
        Refused => "refused",
    }
}

label_enum! {
    /// `result` of `streetgate_snapshot_delta_total`.
    SnapshotDelta {
        Applied => "applied",
        Refused => "refused",
        Mismatched => "mismatched",
    }
}

label_enum! {
    /// `result` of `streetgate_jwks_refresh_total`.
    JwksRefresh {
        Ok => "ok",
        Error => "error",
        Invalid => "invalid",
        RateLimited => "rate_limited",
    }
}

label_enum! {
    /// `result` of `streetgate_token_cache_total`.
    CacheLookup {
        Hit => "hit",
        Miss => "miss",
    }
}

label_enum! {
    /// `result` of `streetgate_config_reload_total`.
    ConfigReload {
        Ok => "ok",
        Invalid => "invalid",
        Error => "error",
    }
}

label_enum! {
    /// `outcome` of `streetgate_filtered_rows_total`.
    RowOutcome {
        Kept => "kept",
        Dropped => "dropped",
    }
}

label_enum! {
    /// `status_class` of `streetgate_upstream_duration_seconds`.
    StatusClass {
        Informational => "1xx",
        Success => "2xx",
        Redirect => "3xx",
        ClientError => "4xx",
        ServerError => "5xx",
        Failed => "error",
    }
}
