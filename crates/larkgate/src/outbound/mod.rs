//! From agent output to Feishu/Lark messages: streaming cards, blocks, parts.
