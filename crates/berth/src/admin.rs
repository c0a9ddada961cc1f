//! `berth admin`: operator conveniences for people without the AWS CLI.
//! They work on the install's database directly (like `aws iam` calls made
//! as the root user), so they also work while no server runs. Running servers
//! see the change within a few seconds.

use anyhow::{Context, bail};
use berth_core::RepositoryName;
use berth_core::policy::{Policy, PolicyKind};
use berth_server::access::managed::managed_policy;
use berth_server::access::new_entity;
use berth_store::{IamKind, IamLink, LinkKind};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::serve::{Install, InstallArgs};

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    install: InstallArgs,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an IAM user with an access key, optionally with managed policies
    /// attached (e.g. arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser).
    /// Prints the key once.
    CreateUser {
        name: String,
        /// A managed policy to attach (repeatable).
        #[arg(long = "policy-arn")]
        policy_arns: Vec<String>,
    },
    /// Create a robot account in one step: an IAM user (path /robots/) that
    /// may log in, push and pull the `--push` repositories and pull the
    /// `--pull` ones, and nothing else. Prints its key once.
    CreateRobot {
        name: String,
        /// A repository the robot may push to and pull from (repeatable;
        /// `team/*` covers a namespace).
        #[arg(long)]
        push: Vec<String>,
        /// A repository the robot may only pull from (repeatable).
        #[arg(long)]
        pull: Vec<String>,
    },
    /// Make a new access key for the account root, and write it to
    /// `<data-dir>/root-credentials`. Other root keys stay as they are
    /// (deactivate or delete them with `aws iam`). The root key from the
    /// environment or the file is put into the database on the first start
    /// only; this is how to get one back after it was revoked.
    RotateRootKey,
}

const PULL: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:DescribeImages",
    "ecr:ListImages",
];
const PUSH: &[&str] = &[
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
];

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let install = args.install.open().await?;
    match args.command {
        AdminCommand::CreateUser { name, policy_arns } => {
            for arn in &policy_arns {
                if managed_policy(arn).is_none()
                    && install
                        .metadata
                        .get_iam_entity(IamKind::Policy, arn.rsplit('/').next().unwrap_or(arn))
                        .await?
                        .is_none_or(|p| p.arn != *arn)
                {
                    bail!("no managed policy {arn}");
                }
            }
            create_user(&install, &args.install, &name, "/").await?;
            for arn in policy_arns {
                let link = IamLink {
                    kind: LinkKind::Attached,
                    subject: IamKind::User.key(&name),
                    object: arn,
                    document: None,
                };
                install
                    .metadata
                    .put_iam_link(&link, &[(IamKind::User, &name)])
                    .await?;
            }
            print_key(&install, &args.install, &name).await
        }
        AdminCommand::CreateRobot { name, push, pull } => {
            if push.is_empty() && pull.is_empty() {
                bail!("a robot needs at least one --push or --pull repository");
            }
            let arn = |repo: &String| -> anyhow::Result<String> {
                let plain = repo.trim_end_matches("/*");
                plain
                    .parse::<RepositoryName>()
                    .with_context(|| format!("'{repo}' is not a repository name"))?;
                Ok(format!(
                    "arn:aws:ecr:{}:{}:repository/{repo}",
                    args.install.region, args.install.account_id
                ))
            };
            let push_arns = push.iter().map(arn).collect::<anyhow::Result<Vec<_>>>()?;
            let pull_arns: Vec<String> = pull
                .iter()
                .map(arn)
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .chain(push_arns.iter().cloned())
                .collect();
            let mut statements = vec![
                json!({"Sid": "Login", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}),
                json!({"Sid": "Pull", "Effect": "Allow", "Action": PULL, "Resource": pull_arns}),
            ];
            if !push_arns.is_empty() {
                statements.push(
                    json!({"Sid": "Push", "Effect": "Allow", "Action": PUSH, "Resource": push_arns}),
                );
            }
            let document = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
            Policy::parse(&document, PolicyKind::Identity)
                .map_err(|e| anyhow::anyhow!("robot policy: {e}"))?;
            create_user(&install, &args.install, &name, "/robots/").await?;
            let link = IamLink {
                kind: LinkKind::Inline,
                subject: IamKind::User.key(&name),
                object: "berth-robot".into(),
                document: Some(document),
            };
            install
                .metadata
                .put_iam_link(&link, &[(IamKind::User, &name)])
                .await?;
            print_key(&install, &args.install, &name).await
        }
        AdminCommand::RotateRootKey => {
            let (id, secret) = crate::serve::rotate_root_key(&install).await?;
            println!(
                "# {} — keep this secret; also written to {}.",
                install.identity.root_arn(),
                install.data_dir.join("root-credentials").display()
            );
            println!("[default]");
            println!("aws_access_key_id = {id}");
            println!("aws_secret_access_key = {secret}");
            println!("region = {}", args.install.region);
            Ok(())
        }
    }
}

async fn create_user(
    install: &Install,
    args: &InstallArgs,
    name: &str,
    path: &str,
) -> anyhow::Result<()> {
    let user = new_entity(
        &args.account_id,
        IamKind::User,
        name,
        path,
        None,
        json!({"tags": []}),
    );
    if !install.metadata.create_iam_entity(&user).await? {
        bail!("a user named {name} already exists");
    }
    Ok(())
}

/// Creates the user's access key and prints it, in `aws configure`'s format.
async fn print_key(install: &Install, args: &InstallArgs, name: &str) -> anyhow::Result<()> {
    let user = install
        .metadata
        .get_iam_entity(IamKind::User, name)
        .await?
        .context("the user vanished")?;
    let (id, secret) = install.identity.create_access_key(&user.arn).await?;
    println!("# {} — keep this secret; it is shown only once.", user.arn);
    println!("[{name}]");
    println!("aws_access_key_id = {id}");
    println!("aws_secret_access_key = {secret}");
    println!("region = {}", args.region);
    Ok(())
}
