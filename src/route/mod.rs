//! Route matching: one radix tree (matchit) over every API's prefixed templates; each leaf holds
//! the routes of that template by method. Never a linear scan.

pub mod compile;
pub mod config;

use std::sync::Arc;

use http::Method;

use crate::authz::rule::Rule;
use crate::filter::ResponsePolicy;

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Stable id from the config: metric label and log field.
    pub id: Arc<str>,
    /// Index into `Config::apis`.
    pub api: usize,
    /// `Config::apis[api].name`: what an integrator's agreement names.
    pub api_name: Arc<str>,
    /// Position in `Router::routes()`, set by `Router::insert` (per-route state is indexed by it).
    pub index: usize,
    pub method: Method,
    /// The template as written (without the API prefix), for logs and `explain`.
    pub template: Box<str>,
    /// Shared, so the snapshot guard's samples hold it without copying it per request.
    pub rule: Arc<Rule>,
    pub creates_work: Option<config::RawCreatesWork>,
    pub response: Option<ResponsePolicy>,
    pub shadow: bool,
    /// Check mode answers this response-policy route unfiltered instead of refusing it.
    pub unfiltered_in_check_mode: bool,
}

/// A matched route and the path parameters it captured.
pub struct RouteMatch<'r, 'p> {
    pub route: &'r Route,
    pub params: matchit::Params<'r, 'p>,
}

impl RouteMatch<'_, '_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }
}

#[derive(Debug, Default)]
pub struct Router {
    tree: matchit::Router<Vec<usize>>,
    routes: Vec<Route>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InsertError {
    #[error("{method} {path} is declared twice")]
    Duplicate { method: Method, path: String },
    #[error("{0}")]
    Tree(String),
}

impl Router {
    /// Adds `route` under `full_path` (API prefix + template).
    pub fn insert(&mut self, full_path: &str, mut route: Route) -> Result<(), InsertError> {
        let index = self.routes.len();
        route.index = index;
        if let Ok(matched) = self.tree.at_mut(full_path) {
            // Same template text (not merely a matching one): another method on this leaf.
            if matched.params.iter().all(|(k, v)| v == format!("{{{k}}}")) {
                let methods = matched.value;
                if methods
                    .iter()
                    .any(|i| self.routes[*i].method == route.method)
                {
                    return Err(InsertError::Duplicate {
                        method: route.method,
                        path: full_path.to_owned(),
                    });
                }
                methods.push(index);
                self.routes.push(route);
                return Ok(());
            }
        }
        self.tree
            .insert(full_path, vec![index])
            .map_err(|e| InsertError::Tree(e.to_string()))?;
        self.routes.push(route);
        Ok(())
    }

    /// The route for `method` and an already-checked `path`, if any.
    pub fn lookup<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<RouteMatch<'r, 'p>> {
        let matched = self.tree.at(path).ok()?;
        let route = matched
            .value
            .iter()
            .map(|i| &self.routes[*i])
            .find(|r| r.method == *method)?;
        Some(RouteMatch {
            route,
            params: matched.params,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
impl Route {
    /// A public route, for the tests of what sits around routing.
    pub(crate) fn public_for_test(id: &str, api_name: &str, method: Method) -> Route {
        Route {
            id: id.into(),
            api: 0,
            api_name: api_name.into(),
            index: 0,
            method,
            template: "/t".into(),
            rule: Arc::new(Rule {
                allow: crate::authz::rule::Allow::Public,
                access: crate::authz::rule::Access::RoleOnly,
                organisation_member: false,
                body: Default::default(),
            }),
            creates_work: None,
            response: None,
            shadow: false,
            unfiltered_in_check_mode: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, method: Method) -> Route {
        Route::public_for_test(id, "work", method)
    }

    #[test]
    fn matches_by_method_and_template() {
        let mut r = Router::default();
        r.insert("/work/works/{wrn}", route("get", Method::GET))
            .unwrap();
        r.insert("/work/works/{wrn}", route("put", Method::PUT))
            .unwrap();
        r.insert("/work/works", route("create", Method::POST))
            .unwrap();
        let m = r.lookup(&Method::GET, "/work/works/AB123").unwrap();
        assert_eq!(&*m.route.id, "get");
        assert_eq!(m.param("wrn"), Some("AB123"));
        assert_eq!(
            &*r.lookup(&Method::PUT, "/work/works/X").unwrap().route.id,
            "put"
        );
        assert!(r.lookup(&Method::DELETE, "/work/works/X").is_none());
        assert!(r.lookup(&Method::GET, "/work/works/X/extra").is_none());
        assert!(r.lookup(&Method::GET, "/work/works").is_none());
        assert_eq!(
            &*r.lookup(&Method::POST, "/work/works").unwrap().route.id,
            "create"
        );
    }

    #[test]
    fn duplicate_method_and_template_is_rejected() {
        let mut r = Router::default();
        r.insert("/a/{x}", route("one", Method::GET)).unwrap();
        assert!(matches!(
            r.insert("/a/{x}", route("two", Method::GET)),
            Err(InsertError::Duplicate { .. })
        ));
    }
}
