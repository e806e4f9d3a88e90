//! The Lua scripts that change presence in Redis. Each runs atomically
//! (Redis runs one script at a time), which is what makes a claim, a
//! takeover and the reaping of a dead node exactly-once.
//!
//! Keys (with the configured prefix, `vigil:` by default):
//! - `online`: hash, client id → owner record (JSON: node, run, conn,
//!   peer, since);
//! - `nodes`: set of the nodes that have registered;
//! - `node:<id>`: a node's lease (`SET ... PX`), refreshed every second;
//! - `node-clients:<id>`: set of the ids a node owns, so a dead node's ids
//!   are found without scanning `online`;
//! - `events`: the stream of presence events;
//! - channel `takeover:<id>`: takeover requests for a node.

/// Claims an id for this node. KEYS: `online`, `node-clients:<me>`. ARGV: id,
/// record, me, prefix. Returns the previous record (or nil). When it was
/// another node's, removes the id from that node's set and asks that node,
/// on its channel, to close the connection (`<run>/<conn>\t<id>`).
pub const CLAIM: &str = r#"
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
if prev then
  local p = cjson.decode(prev)
  if p.node ~= ARGV[3] then
    redis.call('SREM', ARGV[4] .. 'node-clients:' .. p.node, ARGV[1])
    redis.call('PUBLISH', ARGV[4] .. 'takeover:' .. p.node, p.run .. '/' .. p.conn .. '\t' .. ARGV[1])
  end
end
return prev
"#;

/// Releases an id, if this connection of this node still owns it. KEYS:
/// `online`, `node-clients:<me>`. ARGV: id, me, run, conn.
pub const RELEASE: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  if c.node == ARGV[2] and c.run == ARGV[3] and c.conn == ARGV[4] then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('SREM', KEYS[2], ARGV[1])
    return 1
  end
end
return 0
"#;

/// The registered nodes, other than `me`, whose lease is missing. KEYS:
/// nodes. ARGV: prefix, me.
pub const SCAN: &str = r#"
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if n ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'node:' .. n) == 0 then
    table.insert(out, n)
  end
end
return out
"#;

/// Reaps a dead node, exactly once: whoever removes it from `nodes` while
/// its lease is missing takes its ids offline and writes their events
/// (reason `node-lost`). KEYS: nodes, online, events. ARGV: prefix, dead,
/// time, maxlen. Returns how many ids went offline, or -1 if the node is
/// alive or was reaped already.
pub const REAP: &str = r#"
if redis.call('EXISTS', ARGV[1] .. 'node:' .. ARGV[2]) == 1 then return -1 end
if redis.call('SREM', KEYS[1], ARGV[2]) == 0 then return -1 end
local set = ARGV[1] .. 'node-clients:' .. ARGV[2]
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local cur = redis.call('HGET', KEYS[2], id)
  if cur then
    local c = cjson.decode(cur)
    if c.node == ARGV[2] then
      redis.call('HDEL', KEYS[2], id)
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
        'time', ARGV[3], 'node', c.node, 'run', c.run, 'conn', c.conn, 'peer', c.peer,
        'client', id, 'event', 'offline', 'reason', 'node-lost')
      n = n + 1
    end
  end
end
redis.call('DEL', set)
return n
"#;

/// Makes Redis agree with this node after a (re)connect. KEYS: online,
/// `node-clients:<me>`. ARGV: me, prefix, first (`1` for the first batch),
/// then triples of id, `<run>/<conn>`, record for the ids online here.
/// On the first batch, ids this node owned in Redis but no longer holds are
/// released. Each local id is claimed unless another node holds it with a
/// later `since` (a HELLO there while Redis could not hear from us: theirs
/// is the newer session); those are returned, as `<run>/<conn>` and id
/// pairs, for this node to close. Claiming from an older holder tells it
/// to close, as CLAIM does.
pub const RECONCILE: &str = r#"
local me, prefix = ARGV[1], ARGV[2]
if ARGV[3] == '1' then
  local here = {}
  for i = 4, #ARGV, 3 do here[ARGV[i]] = true end
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if not here[id] then
      local cur = redis.call('HGET', KEYS[1], id)
      if cur and cjson.decode(cur).node == me then redis.call('HDEL', KEYS[1], id) end
      redis.call('SREM', KEYS[2], id)
    end
  end
end
local lost = {}
for i = 4, #ARGV, 3 do
  local id, conn, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', KEYS[1], id)
  local mine = cjson.decode(rec)
  local keep = true
  if cur then
    local c = cjson.decode(cur)
    if c.node ~= me then
      if c.since > mine.since then
        keep = false
        table.insert(lost, conn)
        table.insert(lost, id)
      else
        redis.call('SREM', prefix .. 'node-clients:' .. c.node, id)
        redis.call('PUBLISH', prefix .. 'takeover:' .. c.node, c.run .. '/' .. c.conn .. '\t' .. id)
      end
    end
  end
  if keep then
    redis.call('HSET', KEYS[1], id, rec)
    redis.call('SADD', KEYS[2], id)
  end
end
return lost
"#;
