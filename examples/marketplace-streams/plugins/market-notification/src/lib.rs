//! The marketplace's notification service: turns domain events into `send.email`
//! commands for the mail service.
//!
//! | domain event        | email template       | to                 |
//! | ------------------- | -------------------- | ------------------ |
//! | `user.created`      | `welcome`            | the new user       |
//! | `project.published` | `project-published`  | the project owner  |
//! | `booking.created`   | `booking-created`    | the freelancer     |
//! | `payment.completed` | `payment-receipt`    | the payer          |
//!
//! A command carries the extension `kind = command`, so routes tell commands
//! (one handler each) from domain events (every subscriber gets a copy). Its id
//! derives from the event's, so a redelivered event yields the same command and
//! the mail service can drop the repeat by id.
//!
//! Config: `source`, the source of the commands (default `/notification-service`).

use router_guest::serde_json::{Value, json};
use router_guest::{Event, HandlerError, config, handler};

/// The command type.
const SEND_EMAIL: &str = "send.email";

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let (template, to_field, about_field) = match event.ty() {
        "user.created" => ("welcome", "email", "userId"),
        "project.published" => ("project-published", "ownerEmail", "projectId"),
        "booking.created" => ("booking-created", "freelancerEmail", "bookingId"),
        "payment.completed" => ("payment-receipt", "payerEmail", "bookingId"),
        _ => return Ok(vec![]),
    };
    let data: Value = event.data_json()?;
    let field = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                HandlerError::fatal(format!(
                    "{} event {} has no `{name}`: cannot send the {template} email",
                    event.ty(),
                    event.id()
                ))
            })
    };
    let to = field(to_field)?;
    let about = field(about_field)?;
    let command = Event::new(
        format!("{}-email", event.id()),
        config::get_or("source", "/notification-service"),
        SEND_EMAIL,
    )
    .with_subject(about)
    .with_extension("kind", "command")
    .with_json_data(&json!({
        "to": to,
        "template": template,
        "about": about,
        "event": event.ty(),
        "data": data,
    }))?;
    Ok(vec![command])
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: &str, data: Value) -> Event {
        Event::new("e-1", "/user-service", ty)
            .with_json_data(&data)
            .expect("JSON")
    }

    #[test]
    fn a_new_user_gets_a_welcome_email_command() {
        let out = handle(event(
            "user.created",
            json!({"userId": "usr_1", "email": "ann@example.com", "role": "FREELANCER"}),
        ))
        .expect("handled");
        assert_eq!(out.len(), 1);
        let command = &out[0];
        assert_eq!(
            (
                command.id(),
                command.ty(),
                command.extension("kind"),
                command.subject()
            ),
            ("e-1-email", SEND_EMAIL, Some("command"), Some("usr_1"))
        );
        let data: Value = command.data_json().expect("JSON");
        assert_eq!(data["to"], "ann@example.com");
        assert_eq!(data["template"], "welcome");
    }

    #[test]
    fn each_domain_event_has_its_template_and_recipient() {
        for (ty, data, template, to) in [
            (
                "project.published",
                json!({"projectId": "prj_1", "ownerEmail": "o@example.com"}),
                "project-published",
                "o@example.com",
            ),
            (
                "booking.created",
                json!({"bookingId": "bk_1", "freelancerEmail": "f@example.com"}),
                "booking-created",
                "f@example.com",
            ),
            (
                "payment.completed",
                json!({"bookingId": "bk_1", "payerEmail": "p@example.com", "amount": 10}),
                "payment-receipt",
                "p@example.com",
            ),
        ] {
            let out = handle(event(ty, data)).expect("handled");
            let sent: Value = out[0].data_json().expect("JSON");
            assert_eq!(
                (sent["template"].as_str(), sent["to"].as_str()),
                (Some(template), Some(to))
            );
        }
    }

    #[test]
    fn an_event_without_a_recipient_is_fatal_and_names_the_field() {
        let error = handle(event("user.created", json!({"userId": "usr_1"}))).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.message().contains("`email`"), "{error}");
    }

    #[test]
    fn other_events_and_commands_send_nothing() {
        assert_eq!(handle(event("user.updated", json!({}))), Ok(vec![]));
        assert_eq!(handle(event(SEND_EMAIL, json!({}))), Ok(vec![]));
    }
}
