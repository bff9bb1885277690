//! The account's users and API tokens.

use super::table::{ago, now, or_dash, time, Table};
use super::{decode, name_of, print_json, seg, Ctl};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use vigil_proto::api::{NewToken, NewUser, TokenView, UserView};

#[derive(Debug, Subcommand, Default)]
pub(super) enum UsersCommand {
    /// The account's users and their roles.
    #[default]
    List,
    /// Add a user; the password comes from VIGIL_PASSWORD or standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from standard input even if VIGIL_PASSWORD is set.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand, Default)]
pub(super) enum TokensCommand {
    /// The account's API tokens (names and last use; never the secrets).
    #[default]
    List,
    /// Create a token; it is printed once, on standard output.
    Create { name: String },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum RoleArg {
    Owner,
    Admin,
    Viewer,
}

impl Ctl {
    pub(super) async fn users(&self, cmd: UsersCommand, password: Option<String>) -> Result<()> {
        match cmd {
            UsersCommand::List => {
                let answer = self.api.get("/users").await?;
                self.show(answer, |users: Vec<UserView>| {
                    let mut t = Table::new(&["ID", "EMAIL", "ROLE"]);
                    for u in users {
                        t.row(vec![u.id, u.email, u.role]);
                    }
                    t.render()
                })
            }
            UsersCommand::Add { email, role, .. } => {
                let body = NewUser {
                    email,
                    password: password.unwrap_or_default(),
                    role: name_of(role),
                };
                let answer = self.api.post("/users", &body).await?;
                self.show(answer, |u: UserView| {
                    format!("added user {} ({}), id {}\n", u.email, u.role, u.id)
                })
            }
        }
    }

    pub(super) async fn tokens(&self, cmd: TokensCommand) -> Result<()> {
        match cmd {
            TokensCommand::List => {
                let answer = self.api.get("/tokens").await?;
                self.show(answer, |tokens: Vec<TokenView>| {
                    let now = now();
                    let mut t = Table::new(&["ID", "NAME", "CREATED", "LAST USED", "STATUS"]);
                    for tok in tokens {
                        t.row(vec![
                            tok.id,
                            tok.name,
                            time(tok.created_at),
                            or_dash(tok.last_used_at.map(|at| ago(at, now))),
                            tok.revoked_at
                                .map_or("active".into(), |at| format!("revoked {}", time(at))),
                        ]);
                    }
                    t.render()
                })
            }
            TokensCommand::Create { name } => {
                let answer = self.api.post("/tokens", &NewToken { name }).await?;
                if self.json {
                    print_json(&answer);
                    return Ok(());
                }
                let tok: TokenView = decode(answer)?;
                let Some(secret) = tok.token else {
                    anyhow::bail!("the server did not return the new token");
                };
                eprintln!(
                    "created token {:?} (id {}); it is shown once, store it now:",
                    tok.name, tok.id
                );
                println!("{secret}");
                Ok(())
            }
            TokensCommand::Revoke { id } => {
                self.api.delete(&format!("/tokens/{}", seg(&id))).await?;
                self.done(format!("revoked token {id}"));
                Ok(())
            }
        }
    }
}
