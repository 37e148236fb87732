//! "The master, else its sibling": how the directory is read, by servers and by the admin tool
//! alike. The whole operation (connect and statements) is tried on the master first; when the
//! master cannot do it for a reason of its own (down, hung, refusing: an
//! [`ErrorKind::Unavailable`] failure), on the sibling. An answer that is itself wrong (an
//! invalid directory, a missing right) is not retried: the sibling would say the same.
//!
//! Only for reading: a change must go to the master.

use std::future::Future;

use super::HostAddr;
use crate::error::{Error, ErrorKind, Result};

/// Which host of the pair answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Master,
    Sibling,
}

impl Answered {
    /// `master` or `sibling`, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Answered::Master => "master",
            Answered::Sibling => "sibling",
        }
    }
}

/// What [`master_else_sibling`] got: the value, who gave it, and, when the sibling did, why the
/// master did not.
#[derive(Debug)]
pub struct FromPair<T> {
    pub value: T,
    pub answered: Answered,
    pub master_failure: Option<Error>,
}

/// Runs `op` on `master`, or on `sibling` when the master is unavailable. `what` names the
/// operation in the error when both fail.
pub async fn master_else_sibling<T, F, Fut>(
    what: &str,
    master: &HostAddr,
    sibling: Option<&HostAddr>,
    mut op: F,
) -> Result<FromPair<T>>
where
    F: FnMut(HostAddr) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let err = match op(master.clone()).await {
        Ok(value) => {
            return Ok(FromPair {
                value,
                answered: Answered::Master,
                master_failure: None,
            })
        }
        Err(e) => e,
    };
    let Some(sibling) = sibling.filter(|_| err.kind() == ErrorKind::Unavailable) else {
        return Err(err);
    };
    match op(sibling.clone()).await {
        Ok(value) => Ok(FromPair {
            value,
            answered: Answered::Sibling,
            master_failure: Some(err),
        }),
        Err(e) => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "{what}: neither the master {master} nor its sibling {sibling} answers \
                 (master: {err}; sibling, which failed too: {e})"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> HostAddr {
        HostAddr::new("db", port).unwrap()
    }

    #[tokio::test]
    async fn the_sibling_answers_only_for_an_unavailable_master() {
        let (m, s) = (addr(1), addr(2));
        let down = |a: HostAddr| async move {
            if a.port == 1 {
                Err(Error::new(ErrorKind::Unavailable, "down"))
            } else {
                Ok(a.port)
            }
        };
        let got = master_else_sibling("reading", &m, Some(&s), down)
            .await
            .unwrap();
        assert_eq!((got.value, got.answered), (2, Answered::Sibling));
        assert!(got.master_failure.is_some());

        let wrong = |a: HostAddr| async move {
            if a.port == 1 {
                Err(Error::invalid("not a directory"))
            } else {
                Ok(a.port)
            }
        };
        let err = master_else_sibling("reading", &m, Some(&s), wrong)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);

        let both = |a: HostAddr| async move {
            Err::<u16, _>(Error::new(ErrorKind::Unavailable, format!("{a} down")))
        };
        let err = master_else_sibling("reading", &m, Some(&s), both)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("db:1 down") && text.contains("db:2 down"),
            "{text}"
        );
        let err = master_else_sibling("reading", &m, None, both)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "db:1 down");
    }
}
