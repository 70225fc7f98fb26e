"""The messages, rendered: templates and their packs, formats, MIME, SMS segments, short,
click- and open-tracked links, unsubscribe tokens. Pure but for reading template files."""
