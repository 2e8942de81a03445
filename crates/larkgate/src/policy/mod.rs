//! Who may talk to the bot: DM and group policies, allowlists, mentions, pairing.
