//! The tables, as diesel sees them: one schema for both backends (`migrations/postgres` and
//! `migrations/sqlite` create the same model; ids are [`Id`](crate::id::Id), times UTC
//! milliseconds, money integer cents, JSON values text).

// `table!` generates a module per table, without docs.
#![allow(missing_docs)]

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    users (id) {
        id -> Id,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    api_keys (id) {
        id -> Id,
        user_id -> Id,
        key_hash -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    agents (id) {
        id -> Id,
        owner_id -> Id,
        name -> Text,
        personality -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        is_default -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    jobs (id) {
        id -> Id,
        status -> Text,
        prompt -> Text,
        title -> Text,
        description -> Text,
        requirements -> Text,
        acceptance_criteria -> Text,
        sender -> Id,
        receiver -> Nullable<Id>,
        receiver_agent_id -> Nullable<Id>,
        held_by_agent_id -> Nullable<Id>,
        held_by_owner_id -> Nullable<Id>,
        hold_expires_at -> Nullable<BigInt>,
        price_cents -> BigInt,
        time_limit_seconds -> BigInt,
        accepted_at -> Nullable<BigInt>,
        deadline_at -> Nullable<BigInt>,
        submitted_at -> Nullable<BigInt>,
        completed_at -> Nullable<BigInt>,
        attempt_count -> Integer,
        cancellation_requested -> Bool,
        output_text -> Nullable<Text>,
        output_attachments -> Nullable<Text>,
        env_vars -> Text,
        attachments -> Text,
        presented_to_agents -> Text,
        verification -> Nullable<Text>,
        verify_errors -> Integer,
        review_due_at -> Nullable<BigInt>,
        structured_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        version -> BigInt,
        verify_lease_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    presentations (agent_id, job_id) {
        agent_id -> Id,
        job_id -> Id,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    attempts (job_id, attempt) {
        job_id -> Id,
        attempt -> Integer,
        agent_id -> Id,
        outcome -> Text,
        earned_cents -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    transfers (id) {
        id -> Id,
        debit -> Text,
        credit -> Text,
        amount_cents -> BigInt,
        reason -> Text,
        job_id -> Nullable<Id>,
        created_at -> BigInt,
    }
}

diesel::table! {
    balances (account) {
        account -> Text,
        balance_cents -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    log_lines (job_id, seq) {
        job_id -> Id,
        seq -> BigInt,
        at -> BigInt,
        level -> Text,
        message -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    quotes (sender, digest) {
        sender -> Id,
        digest -> Binary,
        structured -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    idempotency (user_id, key) {
        user_id -> Id,
        key -> Text,
        digest -> Binary,
        response -> Nullable<Binary>,
        expires_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    job_events (seq) {
        seq -> BigInt,
        from_status -> Nullable<Text>,
        prev_operator -> Nullable<Id>,
        dispatched -> Bool,
        job_id -> Id,
        status -> Text,
        prompt -> Text,
        title -> Text,
        description -> Text,
        requirements -> Text,
        acceptance_criteria -> Text,
        sender -> Id,
        receiver -> Nullable<Id>,
        receiver_agent_id -> Nullable<Id>,
        held_by_agent_id -> Nullable<Id>,
        held_by_owner_id -> Nullable<Id>,
        hold_expires_at -> Nullable<BigInt>,
        price_cents -> BigInt,
        time_limit_seconds -> BigInt,
        accepted_at -> Nullable<BigInt>,
        deadline_at -> Nullable<BigInt>,
        submitted_at -> Nullable<BigInt>,
        completed_at -> Nullable<BigInt>,
        attempt_count -> Integer,
        cancellation_requested -> Bool,
        output_text -> Nullable<Text>,
        output_attachments -> Nullable<Text>,
        env_vars -> Text,
        attachments -> Text,
        presented_to_agents -> Text,
        verification -> Nullable<Text>,
        verify_errors -> Integer,
        review_due_at -> Nullable<BigInt>,
        structured_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        version -> BigInt,
        verify_lease_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    webhook_endpoints (id) {
        id -> Id,
        owner_id -> Id,
        url -> Text,
        events -> Text,
        description -> Nullable<Text>,
        enabled -> Bool,
        secret -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    webhook_deliveries (id) {
        id -> Id,
        endpoint_id -> Id,
        event_seq -> BigInt,
        event_type -> Text,
        event_id -> Text,
        job_id -> Id,
        recipient -> Id,
        attempts -> Integer,
        state -> Text,
        next_at -> Nullable<BigInt>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        give_up_at -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    files (id) {
        id -> Id,
        owner_id -> Id,
        filename -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::id::Id;
    job_files (job_id, role, file_id) {
        job_id -> Id,
        role -> Text,
        file_id -> Id,
        attempt -> Integer,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_keys,
    agents,
    jobs,
    presentations,
    attempts,
    transfers,
    balances,
    log_lines,
    quotes,
    idempotency,
    job_events,
    webhook_endpoints,
    webhook_deliveries,
    files,
    job_files,
);
