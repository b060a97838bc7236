/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mq_topic.h - topic_tags patterns of the mqtt input: "chambers/{device}/+/#"
 * turns topic levels into tags.
 */
#ifndef GATHERD_MQTT_TOPIC_H
#define GATHERD_MQTT_TOPIC_H

#include <gatherd/gatherd.h>

/* Longest pattern (and topic looked at), in levels. */
#define MQ_MAX_LEVELS 32

/* One level of a compiled topic_tags pattern. */
struct mq_level {
    char *tag;     /* {name}: the level's text becomes tag @tag */
    char *literal; /* must equal the level; NULL: any ("+" or {name}) */
    bool rest;     /* "#": matches the remaining levels */
};

struct mq_pattern {
    struct mq_level *v;
    size_t n;
};

/* mq_pattern_compile() - compile @text into @p (zeroed). Returns 0,
 * GD_ECONFIG with *@why (static text), or GD_ENOMEM. Release @p with
 * mq_pattern_free() either way. */
int mq_pattern_compile(struct mq_pattern *p, const char *text, const char **why);
/* mq_pattern_free() - release a pattern. Accepts a zeroed one. */
void mq_pattern_free(struct mq_pattern *p);
/* mq_pattern_apply() - tag points [@from, len) of @b (under construction)
 * with the levels @pat picks out of @topic, when the whole pattern matches
 * it; otherwise add nothing. */
void mq_pattern_apply(const struct mq_pattern *pat, const char *topic, gd_batch *b, size_t from);

#endif
