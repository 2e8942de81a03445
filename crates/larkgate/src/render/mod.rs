//! Agent markdown to card markdown, posts and plain text, split under the platform's limits.
