#!lua name=ocean
--[[
ocean's data layout and write steps in Redis (docs/scale-out.md says why it is so).

Every key of a route carries the hash tag {ROUTE}, so one route lives in one slot and a
write is ONE function call on ONE slot that validates, applies, appends its live message
to the route's change stream and SPUBLISHes it, all in the same atomic step:

  o:{R}:m          hash  seq (last per-route seq), ms (last write time: a route's clock never goes back)
  o:{R}:k          zset  live entity keys, score 0 (key order for listing)
  o:{R}:e:<key>    hash  c created ms, u updated ms, n version, x expires ms (0: none), v plain value JSON
  o:{R}:f:<key>    hash  plain field -> its JSON text (as Python encoded it; never re-encoded here)
  o:{R}:c:<key>    hash  counter field -> "123" (int64) or "1.5"/"1e+20" (float: always a '.' or 'e')
  o:{R}:h:<key>    list  history, newest first: JSON [version, seq, ms, op, payload]
  o:{R}:ev         stream events; entry id <seq>-<ms>; p payload JSON, x expires, s source, t own time
  o:{R}:x          stream change stream (capped); entry id <seq>-<ms>; o kind, e epoch, k key, d published JSON
  o:{R}:s:<key>    hash  the entity's sketch fields in the order they came: name -> '~' (uniq) or '%' (dist)
                         (short values keep Redis's listpack, and so the order: summaries live apart)
  o:{R}:t:<key>    hash  each sketch field's summary as reads show it: an estimate, or a dist's JSON
  o:{R}:u:<key>:<f> string the uniq field f: a Redis HyperLogLog (PFADD; the registers are ocean's Hll's)
  o:{R}:d:<key>:<f> hash  the dist field f: n count, z zero count, s sum, lo/hi min/max (texts), P<k>/N<k>
                         bin k of the positive/negative store -> count, hP/lP hN/lN highest/lowest key
  o:{R}:tmp        hash  scratch, inside one call only (exact int64 sums of plain fields becoming counters)
  o:{R}            shard channel: the same message as the change stream entry, [id, epoch, kind, key, data]

A sketch field's place among the plain fields is kept by a marker in o:{R}:f:<key>: the text
'~' (uniq) or '%' (dist), never a JSON text; every read puts the summary from o:{R}:t:<key> there,
as the embedded store puts sketches.shown over its markers.

A seq is per route (HINCRBY o:{R}:m seq); the stream id <seq>-<ms> names one write. Each change
stream entry also carries the epoch of the process life that wrote it (see epoch()): after a
failover that lost writes a seq is handed out again, under another epoch, so a resuming client
whose last message was lost is told (a gap), never silently skipped past the new ones.

Errors are replies "OCEAN <code> TAB <detail> TAB" (see fail); the Python side turns
them into the same ocean.errors types and messages as the embedded engine.
Integers are never added in Lua (doubles lose int64 precision): HINCRBY does it in C.
--]]

local VERSION = 9

local function fail(code, detail)  -- "OCEAN code TAB detail TAB": detail is a field name, or name TAB old TAB amount
  return error({err = 'OCEAN ' .. code .. '\t' .. (detail or '') .. '\t'})
end

local function is_int(text)
  return string.match(text, '^%-?%d+$') ~= nil
end

local function is_number(text)  -- a JSON number as Python writes it
  return is_int(text) or string.match(text, '^%-?%d+%.?%d*[eE]?[-+]?%d*$') ~= nil
end

local function fmt_float(x)  -- round-trips a double; always marks it a float
  local s = string.format('%.17g', x)
  if not string.find(s, '[.eEn]') then s = s .. '.0' end
  return s
end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

-- The key names of a route (n.m, n.k, n.x, n.tmp, n.ev, the channel n.ch) and of one of its
-- entities (n.e, n.f, n.c, n.h, n.s, n.t; n.u and n.d end with ':', a field's name follows), each
-- made on its first use: a write uses a few of them (PERF: making all 14 cost ~2.6 us a write).
local ROUTE_PARTS = {m = 'm', k = 'k', x = 'x', tmp = 'tmp', ev = 'ev'}
local KEY_PARTS = {e = 'e:', f = 'f:', c = 'c:', h = 'h:', s = 's:', t = 't:'}
local names_of = {__index = function(n, part)
  local v
  if ROUTE_PARTS[part] then v = 'o:{' .. n[1] .. '}:' .. ROUTE_PARTS[part]
  elseif KEY_PARTS[part] then v = 'o:{' .. n[1] .. '}:' .. KEY_PARTS[part] .. n[2]
  elseif part == 'u' or part == 'd' then v = 'o:{' .. n[1] .. '}:' .. part .. ':' .. n[2] .. ':'
  elseif part == 'ch' then v = 'o:{' .. n[1] .. '}'
  else return nil end
  rawset(n, part, v)
  return v
end}

local function names(route, key)
  return setmetatable({route, key}, names_of)
end

-- ---- sketch fields (engine/sketches.py is the embedded store's; docs/scale-out.md) -------------
-- uniq: Redis's own HyperLogLog, whose hash, registers and estimator ocean's Hll copies.
-- dist: DDSketch bins; the worker computes each value's bin (the kernel's mapping), this file
-- applies them with the kernel's 2048-bin collapse and answers the summary (count, sum, min,
-- max, p50..p99) with the kernel's walk over the bins. GAMMA and ONE_PLUS_A are Python's
-- DIST_GAMMA and 1 + DIST_RELATIVE_ACCURACY, written so they read back to the same doubles
-- (tests/redis/test_sketches.py checks them).
local GAMMA, ONE_PLUS_A, BIN_LIMIT = 1.02020202020202, 1.01, 2048
local QUANTILES = {{'p50', 0.5}, {'p90', 0.9}, {'p95', 0.95}, {'p99', 0.99}}

local function sketch_data(n, kind, name)  -- kind '~' or '%'
  return (kind == '~' and n.u or n.d) .. name
end

local function held_of(n)  -- name -> kind char ('~' or '%'), and the names in the order they came
  local raw = redis.call('HGETALL', n.s)
  local out, order = {}, {}
  for i = 1, #raw, 2 do out[raw[i]] = raw[i + 1]; order[#order + 1] = raw[i] end
  return out, order
end

local function sketch_keys(n)  -- every key holding the entity's sketches (its two hashes first)
  local raw = redis.call('HGETALL', n.s)
  local out = {n.s, n.t}
  for i = 1, #raw, 2 do out[#out + 1] = sketch_data(n, raw[i + 1], raw[i]) end
  return out
end

local function drop_sketches(n)
  local ks = sketch_keys(n)
  if #ks > 2 then redis.call('DEL', unpack(ks)) end  -- none: no sketch key exists (made together)
end

local function is_marker(v)  -- '~' or '%' (a JSON text never is one)
  return v == '~' or v == '%'
end

-- The plain fields (HGETALL o:{R}:f:<key>) with each sketch's marker replaced by its summary.
local function shown_fields(n)
  local raw = redis.call('HGETALL', n.f)
  local shown = nil
  for i = 2, #raw, 2 do
    if is_marker(raw[i]) then
      if not shown then
        shown = {}
        local t = redis.call('HGETALL', n.t)
        for j = 1, #t, 2 do shown[t[j]] = t[j + 1] end
      end
      raw[i] = shown[raw[i - 1]] or 'null'
    end
  end
  return raw
end

-- The epoch: a token of this Redis process's life as a master, taken at its first write. A
-- library-level local lives as long as the Lua state: a restart, a FUNCTION LOAD, and the full
-- resync a demoted master with lost writes goes through all start a new one. (Unlike the
-- replication id, an RDB restored after a crash does not bring it back, and unlike INFO it costs
-- nothing per call.)
local boot = nil
local function epoch()
  if not boot then
    local t = redis.call('TIME')
    boot = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
  end
  return boot
end

local function clock(m)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('HGET', m, 'ms') or '0')
  if ms < last then ms = last end
  return ms
end

local function num(x)
  return string.format('%.0f', x)
end

-- The live entity at time ms, or nil (an expired one is deleted here, as the embedded engine does).
local function load(n, key, ms)
  local raw = redis.call('HGETALL', n.e)
  if #raw == 0 then
    redis.call('DEL', n.f, n.c)  -- leftovers of an entity Redis expired part by part
    drop_sketches(n)
    return nil
  end
  local ent = {}
  for i = 1, #raw, 2 do ent[raw[i]] = raw[i + 1] end
  local x = tonumber(ent.x or '0')
  if x > 0 and x <= ms then
    redis.call('DEL', n.e, n.f, n.c)
    drop_sketches(n)
    redis.call('ZREM', n.k, key)
    return nil
  end
  return ent
end

local function kv_json(hash_raw)  -- HGETALL of f or c -> the inside of a JSON object
  local parts = {}
  for i = 1, #hash_raw, 2 do parts[#parts + 1] = cjson.encode(hash_raw[i]) .. ':' .. hash_raw[i + 1] end
  return table.concat(parts, ',')
end

local function merged_json(n)  -- plain fields then counters, as State.payload merges them
  local a, b = kv_json(shown_fields(n)), kv_json(redis.call('HGETALL', n.c))
  if a ~= '' and b ~= '' then return '{' .. a .. ',' .. b .. '}' end
  return '{' .. a .. b .. '}'
end

local function ring(ch, id, e, kind, key, data)  -- the doorbell: readers then XRANGE the change stream
  redis.call('SPUBLISH', ch, '[' .. cjson.encode(id) .. ',' .. cjson.encode(e) .. ',' .. cjson.encode(kind) .. ','
    .. (key and cjson.encode(key) or 'null') .. ',' .. data .. ']')
end

-- Inside ocean_write_many: {seq = the route's last seq, last = the last message published}, else nil.
local batch = nil

-- Take the route's next seq and publish one message (change stream + shard channel). In a batch
-- the route's seq and clock (m.seq, m.ms) are written and the doorbell rung once, after the last
-- drop (write_many).
local function publish(n, route, ms, kind, key, data, cap)
  local seq
  if batch then
    seq = batch.seq + 1
    batch.seq = seq
  else
    seq = redis.call('HINCRBY', n.m, 'seq', 1)
  end
  local id, e = num(seq) .. '-' .. num(ms), epoch()
  if key then
    redis.call('XADD', n.x, 'MAXLEN', '~', cap, id, 'o', kind, 'e', e, 'k', key, 'd', data)
  else
    redis.call('XADD', n.x, 'MAXLEN', '~', cap, id, 'o', kind, 'e', e, 'd', data)
  end
  if batch then
    batch.last = {n.ch, id, e, kind, key, data}
  else
    redis.call('HSET', n.m, 'ms', num(ms))
    ring(n.ch, id, e, kind, key, data)
  end
  return seq, id
end

-- Add amounts to counters with every change undone on the first failure (nothing is half-applied).
-- incs: list of {name, amount text}; base: name -> starting value text for promoted plain fields.
local function add_counters(c, incs, base)
  if #incs == 1 and next(base) == nil and is_int(incs[1][2]) then  -- the common case, one command
    local r = redis.pcall('HINCRBY', c, incs[1][1], incs[1][2])
    if type(r) == 'number' then  -- else (a float stored, an overflow) nothing changed: the steps below
      return {{incs[1][1], math.abs(r) >= 2 ^ 53 and redis.call('HGET', c, incs[1][1]) or num(r)}}
    end
  end
  local before, totals = {}, {}
  local function undo()
    for name, old in pairs(before) do
      if old == false then redis.call('HDEL', c, name) else redis.call('HSET', c, name, old) end
    end
  end
  for _, inc in ipairs(incs) do
    local name, amount = inc[1], inc[2]
    local stored = redis.call('HGET', c, name)
    if before[name] == nil then before[name] = stored or false end
    local old = base[name] or stored or '0'
    local new
    if is_int(old) and is_int(amount) then
      if base[name] then redis.call('HSET', c, name, old) end
      local r = redis.pcall('HINCRBY', c, name, amount)
      if type(r) == 'table' and r.err then
        undo()
        return nil, 'overflow', name .. '\t' .. old .. '\t' .. amount
      end
      new = num(r)
      if math.abs(r) >= 2 ^ 53 then new = redis.call('HGET', c, name) end  -- exact text from Redis
    else
      local x = tonumber(old) + tonumber(amount)
      if not finite(x) then
        undo()
        return nil, 'float_overflow', name .. '\t' .. old .. '\t' .. amount
      end
      new = fmt_float(x)
      redis.call('HSET', c, name, new)
    end
    totals[#totals + 1] = {name, new}
  end
  return totals
end

local function totals_json(totals)
  local parts = {}
  for _, t in ipairs(totals) do parts[#parts + 1] = cjson.encode(t[1]) .. ':' .. t[2] end
  return table.concat(parts, ',')
end

local function flat(totals)
  local out = {}
  for _, t in ipairs(totals) do out[#out + 1] = t[1]; out[#out + 1] = t[2] end
  return out
end

-- Redis reclaims an expired entity's memory; reads check x themselves. old: the expiry before
-- this write (keys without one need no PERSIST: the common case costs nothing here).
local function keep_alive(n, x, old)
  if x > 0 then
    for _, k in ipairs({n.e, n.f, n.c}) do redis.call('PEXPIREAT', k, num(x)) end
    for _, k in ipairs(sketch_keys(n)) do redis.call('PEXPIREAT', k, num(x)) end
  elseif old > 0 then
    redis.call('PERSIST', n.e); redis.call('PERSIST', n.f); redis.call('PERSIST', n.c)
    for _, k in ipairs(sketch_keys(n)) do redis.call('PERSIST', k) end
  end
end

local function record(n, limit, version, seq, ms, op, payload)
  if limit <= 0 then return end
  redis.call('LPUSH', n.h, '[' .. num(version) .. ',' .. num(seq) .. ',' .. num(ms) .. ',"' .. op .. '",' .. payload .. ']')
  redis.call('LTRIM', n.h, 0, limit - 1)
end

-- A dist add's items (the worker's, redisstore/sketches.py), space-separated texts:
--   'a STORE KEY COUNT VALUE'  VALUE added COUNT times; STORE P, N (bin KEY of |VALUE|) or Z (zero)
--   'm COUNT ZERO SUM MIN MAX' a whole sketch merged in: its scalars; its bins follow as
--   'b STORE KEY COUNT'
local function split(text)
  local out = {}
  for w in string.gmatch(text, '%S+') do out[#out + 1] = w end
  return out
end

-- Why adding items to the dist D (nil: a new one) must be refused, or nil: the count passing
-- 2**63 - 1 (HINCRBY on the scratch hash says so exactly) or the sum turning NaN, summed in the
-- kernel's order (sketches.dist_overflow).
local function dist_overflow(n, D, items)
  local count, total = '0', 0.0
  if D then
    count = redis.call('HGET', D, 'n') or '0'
    total = tonumber(redis.call('HGET', D, 's') or '0')
  end
  redis.call('HSET', n.tmp, 'n', count)
  local over = false
  for _, it in ipairs(items) do
    local w = split(it)
    local c = (w[1] == 'a' and w[4]) or (w[1] == 'm' and w[2]) or nil
    if c then
      local r = redis.pcall('HINCRBY', n.tmp, 'n', c)
      if type(r) == 'table' and r.err then over = true; break end
      if w[1] == 'a' then total = total + tonumber(w[5]) * tonumber(c) else total = total + tonumber(w[4]) end
    end
  end
  redis.call('DEL', n.tmp)
  if over then return 'its count would pass 2**63 - 1' end
  if total ~= total then return 'its sum would leave the float range both ways (+inf and -inf)' end
  return nil
end

-- Count c at bin k of store st ('P' or 'N'): past BIN_LIMIT keys the lowest fold into the new
-- floor, so each value ends at max(its key, highest - 2047) in any order (the kernel's store).
local function bin_add(D, st, k, c)
  local hf, lf = 'h' .. st, 'l' .. st
  local hi = redis.call('HGET', D, hf)
  if not hi then
    redis.call('HSET', D, hf, num(k), lf, num(k))
  else
    hi = tonumber(hi)
    local lo = tonumber(redis.call('HGET', D, lf))
    if k > hi then
      redis.call('HSET', D, hf, num(k))
      local floor = k - BIN_LIMIT + 1
      if floor > lo then
        local raw = redis.call('HGETALL', D)
        for i = 1, #raw, 2 do
          local f = raw[i]
          if string.sub(f, 1, 1) == st and tonumber(string.sub(f, 2)) < floor then
            redis.call('HDEL', D, f)
            redis.call('HINCRBY', D, st .. num(floor), raw[i + 1])
          end
        end
        redis.call('HSET', D, lf, num(floor))
      end
    else
      if k < hi - BIN_LIMIT + 1 then k = hi - BIN_LIMIT + 1 end
      if k < lo then redis.call('HSET', D, lf, num(k)) end
    end
  end
  redis.call('HINCRBY', D, st .. num(k), c)
end

local function dist_apply(D, items)
  local empty = (redis.call('HGET', D, 'n') or '0') == '0'
  local total = tonumber(redis.call('HGET', D, 's') or '0')
  local lo, hi = redis.call('HGET', D, 'lo'), redis.call('HGET', D, 'hi')
  for _, it in ipairs(items) do
    local w = split(it)
    if w[1] == 'a' then
      local vt = w[5]
      local v = tonumber(vt)
      if w[2] == 'Z' then redis.call('HINCRBY', D, 'z', w[4]) else bin_add(D, w[2], tonumber(w[3]), w[4]) end
      if empty then lo, hi, empty = vt, vt, false
      elseif v < tonumber(lo) then lo = vt
      elseif v > tonumber(hi) then hi = vt end
      redis.call('HINCRBY', D, 'n', w[4])
      total = total + v * tonumber(w[4])
    elseif w[1] == 'm' then
      if empty then lo, hi, empty = w[5], w[6], false
      else
        if tonumber(w[5]) < tonumber(lo) then lo = w[5] end
        if tonumber(w[6]) > tonumber(hi) then hi = w[6] end
      end
      redis.call('HINCRBY', D, 'n', w[2])
      redis.call('HINCRBY', D, 'z', w[3])
      total = total + tonumber(w[4])
    else
      bin_add(D, w[2], tonumber(w[3]), w[4])
    end
  end
  redis.call('HSET', D, 's', fmt_float(total))
  if empty then redis.call('HSET', D, 'n', '0') else redis.call('HSET', D, 'lo', lo, 'hi', hi) end
end

-- The summary reads show (sketches.shown): {count, sum, min, max, p50, p90, p95, p99}, each
-- quantile the bin holding the value at rank q * (count - 1), as the kernel walks them: the
-- negative store from its highest key, the zeros, the positive store; clamped to [min, max].
-- NOTE: counts are summed as doubles here: exact up to 2**53 values in one sketch.
local function dist_summary(D)
  local raw = redis.call('HGETALL', D)
  local h, pc, nc = {}, {}, {}
  for i = 1, #raw, 2 do
    local f = raw[i]
    local c = string.byte(f, 1)
    if c == 80 then pc[tonumber(string.sub(f, 2))] = tonumber(raw[i + 1])  -- 'P': a positive bin
    elseif c == 78 then nc[tonumber(string.sub(f, 2))] = tonumber(raw[i + 1])  -- 'N': a negative one
    else h[f] = raw[i + 1] end
  end
  local total = tonumber(h.s or '0')
  local parts = {'{"count":', h.n or '0', ',"sum":', finite(total) and fmt_float(total) or 'null'}
  if (h.n or '0') == '0' then
    parts[#parts + 1] = ',"min":null,"max":null,"p50":null,"p90":null,"p95":null,"p99":null}'
    return table.concat(parts)
  end
  local count, lo, hi = tonumber(h.n), tonumber(h.lo), tonumber(h.hi)
  parts[#parts + 1] = ',"min":' .. fmt_float(lo) .. ',"max":' .. fmt_float(hi)
  -- One walk over the bins' span (at most 2048 keys a store: no sort) for the four quantiles,
  -- whose ranks only grow: where four of the kernel's walks would stop.
  -- PERF: Redis CPU per observe of one value (INFO commandstats over 2000 calls): 136 us
  -- with 165 bins, 364 us with 970 (an incr: 27 us); reading and parsing the bins is most of it, the
  -- walk ~10 us. A hot dist field is best fed [value, count] pairs in batches (as the accounting does).
  local nq, ranks, got, j, seen = #QUANTILES, {}, {}, 1, 0
  for q = 1, nq do ranks[q] = QUANTILES[q][2] * (count - 1) end
  if h.hN then
    for k = tonumber(h.hN), tonumber(h.lN), -1 do
      local c = nc[k]
      if c then
        seen = seen + c
        while j <= nq and seen > ranks[j] do got[j] = -((GAMMA ^ (k - 1)) * ONE_PLUS_A); j = j + 1 end
        if j > nq then break end
      end
    end
  end
  seen = seen + tonumber(h.z or '0')
  while j <= nq and seen > ranks[j] do got[j] = 0.0; j = j + 1 end
  if h.hP and j <= nq then
    for k = tonumber(h.lP), tonumber(h.hP) do
      local c = pc[k]
      if c then
        seen = seen + c
        while j <= nq and seen > ranks[j] do got[j] = (GAMMA ^ (k - 1)) * ONE_PLUS_A; j = j + 1 end
        if j > nq then break end
      end
    end
  end
  for q = 1, nq do
    local v = got[q] or hi
    if v < lo then v = lo end
    if hi < v then v = hi end
    parts[#parts + 1] = ',"' .. QUANTILES[q][1] .. '":' .. fmt_float(v)
  end
  parts[#parts + 1] = '}'
  return table.concat(parts)
end

-- A uniq add's items: 'v' .. a value's text (PFADD), or 'h' .. a Redis HyperLogLog string
-- (a whole sketch merged in: PFMERGE). Returns the new estimate's text.
local function uniq_apply(n, U, items)
  local vals = {}
  for _, it in ipairs(items) do
    if string.sub(it, 1, 1) == 'v' then
      vals[#vals + 1] = string.sub(it, 2)
    else
      redis.call('SET', n.tmp, string.sub(it, 2))
      redis.call('PFMERGE', U, n.tmp)
      redis.call('DEL', n.tmp)
    end
  end
  if #vals == 0 then redis.call('PFADD', U) end  -- made, if new, even with no value
  for i = 1, #vals, 1000 do redis.call('PFADD', U, unpack(vals, i, math.min(i + 999, #vals))) end
  return num(redis.call('PFCOUNT', U))
end

--[[ ocean_write: one drop. KEYS[1] = o:{R}:m. ARGV:
  1 kind (s save, u update, i incr, v value, r remove, e event)   2 route   3 key ('' for events)
  4 source ('' none)   5 keep ms (0 none)   6 history limit   7 event retention   8 change stream cap
  9 own time of an imported event ('' none)   10 body JSON (plain fields object, value or event payload)
  11 number of plain fields P, then P triplets (name, JSON, number text: '' not a number, '?' not an amount),
  then pairs (name, amount text) of increments, then each sketch add as '\1' .. '~' or '%' .. name,
  its number of items M, and M items (uniq_apply, dist_overflow above).
Answer: {seq, ms, id, totals (flat name, value), payload JSON or false, sketch totals (flat name, JSON)}. ]]
local function write_at(args, ms)  -- ms: the write's time, from clock()
  local kind, route, key, source = args[1], args[2], args[3], args[4]
  local keep, hlimit, retention, cap = tonumber(args[5]), tonumber(args[6]), tonumber(args[7]), tonumber(args[8])
  local body = args[10]
  local n = names(route, key)
  if kind == 'e' then
    local seq, id = publish(n, route, ms, 'event', nil, body, cap)
    local f = {'p', body}
    if keep > 0 then f[#f + 1] = 'x'; f[#f + 1] = num(ms + keep) end
    if source ~= '' then f[#f + 1] = 's'; f[#f + 1] = source end
    if args[9] ~= '' then f[#f + 1] = 't'; f[#f + 1] = args[9] end
    redis.call('XADD', n.ev, id, unpack(f))
    if retention > 0 and redis.call('XLEN', n.ev) > retention + math.max(16, math.floor(retention / 10)) then
      redis.call('XTRIM', n.ev, 'MAXLEN', retention)
    end
    return {seq, num(ms), id, {}, false}
  end
  local ent = load(n, key, ms)
  if kind == 'r' then
    if not ent then return fail('not_found', '') end
    local seq, id = publish(n, route, ms, 'remove', key, '{}', cap)
    record(n, hlimit, tonumber(ent.n) + 1, seq, ms, 'remove', 'null')
    redis.call('DEL', n.e, n.f, n.c)
    drop_sketches(n)
    redis.call('ZREM', n.k, key)
    return {seq, num(ms), id, {}, false}
  end
  if kind == 'v' then
    local version = ent and tonumber(ent.n) + 1 or 1
    local seq, id = publish(n, route, ms, 'save', key, body, cap)
    redis.call('DEL', n.f, n.c, n.e)
    drop_sketches(n)
    local x = keep > 0 and ms + keep or 0
    redis.call('HSET', n.e, 'c', ent and ent.c or num(ms), 'u', num(ms), 'n', num(version), 'x', num(x), 'v', body)
    redis.call('ZADD', n.k, 0, key)
    keep_alive(n, x, 0)  -- the keys were just made anew
    record(n, hlimit, version, seq, ms, 'save', body)
    return {seq, num(ms), id, {}, false}
  end
  -- save / update / incr: State._write, checks first, in the same order
  local replace = kind == 's'
  local plain, p = {}, tonumber(args[11])
  local incs, adds, i = {}, {}, 12 + 3 * p
  while i <= #args do
    local name = args[i]
    if string.byte(name, 1) == 1 then  -- a sketch add (no field name holds a control character)
      local m, items = tonumber(args[i + 1]), {}
      for j = i + 2, i + 1 + m do items[#items + 1] = args[j] end
      adds[#adds + 1] = {kind = string.sub(name, 2, 2), name = string.sub(name, 3), items = items}
      i = i + 2 + m
    else
      incs[#incs + 1] = {name, args[i + 1]}
      i = i + 2
    end
  end
  if ent and ent.v and (#incs > 0 or #adds > 0 or not replace) then return fail('plain_value', '') end
  -- the entity's sketch fields; an incr without sketch adds (the hot path) finds them by their
  -- markers in the plain fields it reads anyway (below)
  local held, held_order = {}, {}
  if ent and not ent.v and (kind ~= 'i' or #adds > 0) then held, held_order = held_of(n) end
  local sets, plain_names = {}, {}
  for i = 12, 11 + 3 * p, 3 do
    local name, json, numtext = args[i], args[i + 1], args[i + 2]
    plain_names[name] = true
    if held[name] then return fail('sketch_set', name .. '\t' .. held[name]) end
    if ent and redis.call('HEXISTS', n.c, name) == 1 then
      if numtext == '' then return fail('not_a_counter_set', name) end
      if numtext == '?' then return fail('invalid_amount', name) end
      sets[#sets + 1] = {name, numtext}
      sets[name] = true
    else
      plain[#plain + 1] = {name, json}
    end
  end
  -- State._write's order: each increment in turn is checked (set too? a plain field that is not a
  -- number?) and, for a plain field becoming a counter, summed then (on a scratch key of this slot:
  -- exact int64 sums need HINCRBY); then the other increments are added. New counters appear in
  -- that order too: the others, then the promoted ones.
  local promoted, rest, inc_names = {}, {}, {}
  for _, inc in ipairs(incs) do
    local name = inc[1]
    inc_names[name] = true
    if plain_names[name] then  -- set as a plain field or as a counter, and incremented
      return fail('both', name)
    end
    if held[name] then return fail('sketch_incr', name .. '\t' .. held[name]) end
    local old = (ent and not replace and not ent.v) and redis.call('HGET', n.f, name)
    if old then
      if is_marker(old) then return fail('sketch_incr', name .. '\t' .. old) end
      if not is_number(old) then return fail('not_a_number', name .. '\t' .. old) end
      local t, problem, detail = add_counters(n.tmp, {inc}, {[name] = old})
      redis.call('DEL', n.tmp)
      if not t then return fail(problem, detail) end
      promoted[#promoted + 1] = t[1]
    else
      rest[#rest + 1] = inc
    end
  end
  -- sketches._check_adds: each add's field must be free or a sketch of its kind
  for _, a in ipairs(adds) do
    local name, h = a.name, held[a.name]
    if plain_names[name] then return fail('sketch_both', name .. '\tset\t' .. a.kind) end
    if inc_names[name] then return fail('sketch_both', name .. '\tincremented\t' .. a.kind) end
    if a.kind == '%' then
      local why = dist_overflow(n, h == '%' and sketch_data(n, '%', name) or nil, a.items)
      if why then return fail('sketch_overflow', name .. '\t' .. why) end
    end
    if h then
      if h ~= a.kind then
        return fail('sketch_kind', name .. '\t' .. h .. '\t' .. a.kind)
      end
    else
      if ent and redis.call('HEXISTS', n.c, name) == 1 then return fail('sketch_counter', name .. '\t' .. a.kind) end
      local old = (ent and not replace) and redis.call('HGET', n.f, name)
      if old then return fail('sketch_plain', name .. '\t' .. a.kind .. '\t' .. old) end
      a.new = true
    end
  end
  local totals, problem, detail = add_counters(n.c, rest, {})
  if not totals then return fail(problem, detail) end
  for _, t in ipairs(promoted) do
    redis.call('HDEL', n.f, t[1])
    redis.call('HSET', n.c, t[1], t[2])
    totals[#totals + 1] = t
  end
  for _, s in ipairs(sets) do redis.call('HSET', n.c, s[1], s[2]) end
  if replace and ent then redis.call('DEL', n.f) end
  for _, pf in ipairs(plain) do redis.call('HSET', n.f, pf[1], pf[2]) end
  if replace then  -- a save keeps an entity's sketches, as it keeps its counters
    for _, name in ipairs(held_order) do redis.call('HSET', n.f, name, held[name]) end
  end
  local sketched = {}
  for _, a in ipairs(adds) do
    if a.new then
      redis.call('HSET', n.f, a.name, a.kind)
      redis.call('HSET', n.s, a.name, a.kind)
      redis.call('HSET', n.m, 'sk', '1')
    end
    local shown
    if a.kind == '~' then shown = uniq_apply(n, sketch_data(n, '~', a.name), a.items)
    else
      local D = sketch_data(n, '%', a.name)
      dist_apply(D, a.items)
      shown = dist_summary(D)
    end
    redis.call('HSET', n.t, a.name, shown)
    sketched[#sketched + 1] = {a.name, shown}
    totals[#totals + 1] = {a.name, shown}
  end
  local version, x
  if not ent then
    version, x = 1, (kind ~= 'i' and keep > 0) and ms + keep or 0
    redis.call('HSET', n.e, 'c', num(ms), 'u', num(ms), 'n', 1, 'x', num(x))
    redis.call('ZADD', n.k, 0, key)
  else
    version = tonumber(ent.n) + 1
    x = tonumber(ent.x or '0')
    if replace then x = keep > 0 and ms + keep or 0 end
    redis.call('HSET', n.e, 'u', num(ms), 'n', num(version), 'x', num(x))
    if ent.v then redis.call('HDEL', n.e, 'v') end  -- an object saved over a plain value
  end
  keep_alive(n, x, ent and tonumber(ent.x or '0') or 0)
  local tj, payload = totals_json(totals), false
  local published
  if kind == 'i' then
    published = '{' .. tj .. '}'
  else
    payload = merged_json(n)
    if tj == '' then published = body
    elseif body == '{}' then published = '{' .. tj .. '}'
    else published = string.sub(body, 1, -2) .. ',' .. tj .. '}' end
  end
  local op = kind == 'i' and 'incr' or (replace and 'save' or 'update')
  local seq, id = publish(n, route, ms, op, key, published, cap)
  if kind ~= 'i' then record(n, hlimit, version, seq, ms, op, payload) end
  local numbers = flat(totals)
  if #sketched > 0 then numbers = flat({unpack(totals, 1, #totals - #sketched)}) end
  return {seq, num(ms), id, numbers, payload, flat(sketched)}
end

local function write(keys, args)
  return write_at(args, clock(names(args[2], '').m))
end

--[[ ocean_write_many: a page of drops of ONE route, each applied as ocean_write applies it, in
order, each on its own: a refused drop changes nothing and the others still apply. KEYS[1] =
o:{R}:m. ARGV: route, then for each drop its number of arguments L and ocean_write's L arguments
(whose route is this one). Done once per call, not per drop: the clock (every drop of the call
has the same ms), the writes of the route's seq and clock (m.seq, m.ms: the seqs are counted
here meanwhile) and the doorbell (one SPUBLISH of the last message: readers XRANGE the change
stream after their position, live.py). Answer: per drop, ocean_write's answer (a table) or its
error's text ("OCEAN ..." as fail makes them, or Redis's). ]]
local function write_many(keys, args)
  local route = args[1]
  local meta = names(route, '').m
  local ms = clock(meta)
  local out, i = {}, 2
  batch = {seq = tonumber(redis.call('HGET', meta, 'seq') or '0')}
  while i <= #args do
    local l, a = tonumber(args[i]), {}
    for j = 1, l do a[j] = args[i + j] end
    i = i + 1 + l
    if a[2] ~= route then
      out[#out + 1] = 'ERR ocean_write_many: a drop of another route than ' .. route
    else
      local ok, r = pcall(write_at, a, ms)
      if ok then out[#out + 1] = r
      else  -- pcall hands on fail's text, or Redis's error ('WRONGTYPE ...'), or Lua's (no code)
        local text = type(r) == 'table' and r.err or tostring(r)
        out[#out + 1] = string.match(text, '^[A-Z]+ ') and text or 'ERR ' .. text
      end
    end
  end
  local last, seq = batch.last, batch.seq
  batch = nil
  if last then
    redis.call('HSET', meta, 'seq', num(seq), 'ms', num(ms))
    ring(unpack(last, 1, 6))
  end
  return out
end

-- An entity as reads show it; with more (an export), also its sketch fields ('~' or '%' .. name,
-- in the order they came) and its expiry.
local function entity_reply(n, key, now, more)
  local raw = redis.call('HGETALL', n.e)
  if #raw == 0 then return false end
  local ent = {}
  for i = 1, #raw, 2 do ent[raw[i]] = raw[i + 1] end
  local x = tonumber(ent.x or '0')
  if x > 0 and x <= now then return false end
  local out = {key, ent.c, ent.u, ent.n, ent.v or false, shown_fields(n), redis.call('HGETALL', n.c)}
  if more then
    local held, order = held_of(n)
    local kinds = {}
    for _, name in ipairs(order) do kinds[#kinds + 1] = held[name] .. name end
    out[8], out[9] = kinds, ent.x or '0'
  end
  return out
end

local function now_of()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ocean_get: KEYS[1] = o:{R}:m; ARGV route, key -> {key, created, updated, version, value|false, fields, counters} or false
local function get(keys, args)
  return entity_reply(names(args[1], args[2]), args[2], now_of())
end

-- ocean_list: KEYS[1] = o:{R}:m; ARGV route, after ('' from the start), limit[, 'more' (entity_reply)]
-- -> {live entities in key order, the last key looked at or false}. One call looks at no more than
-- LIST_BUDGET keys (expired ones are skipped), so it never holds Redis long; when it stops early the
-- caller goes on from the key it returns.
local LIST_BUDGET = 2000
local function list(keys, args)
  local route, after, limit, more = args[1], args[2], tonumber(args[3]), args[4] == 'more'
  local k = names(route, '').k
  local out, now, start = {}, now_of(), after == '' and '-' or '(' .. after
  local budget, last = LIST_BUDGET, false
  while #out < limit do
    if budget <= 0 then return {out, last} end
    local page = redis.call('ZRANGEBYLEX', k, start, '+', 'LIMIT', 0, math.min(limit - #out, budget))
    if #page == 0 then break end
    for _, key in ipairs(page) do
      local r = entity_reply(names(route, key), key, now, more)
      if r then out[#out + 1] = r end
      start, last = '(' .. key, key
    end
    budget = budget - #page
  end
  return {out, false}
end

-- ocean_sweep: KEYS[1] = o:{R}:m; ARGV route, after ('' from the start) -> {removed keys, next or false}.
-- Deletes entities whose keep ran out (and their index entries), up to LIST_BUDGET keys a call,
-- and trims the events at the head of the stream whose keep ran out. Writes and reads already treat
-- expired data as gone; this returns the memory (Redis's own expiry reclaims the entity hashes).
local function sweep(keys, args)
  local route, after = args[1], args[2]
  local n0 = names(route, '')
  local now = clock(n0.m)
  local page = redis.call('ZRANGEBYLEX', n0.k, after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, LIST_BUDGET)
  local removed = {}
  for _, key in ipairs(page) do
    local n = names(route, key)
    if not load(n, key, now) then
      redis.call('ZREM', n.k, key)  -- load removed an expired one; a vanished one leaves only this
      removed[#removed + 1] = key
    end
  end
  if after == '' then
    for _ = 1, LIST_BUDGET do
      local head = redis.call('XRANGE', n0.ev, '-', '+', 'COUNT', 1)
      if #head == 0 then break end
      local f, x = head[1][2], 0
      for i = 1, #f, 2 do if f[i] == 'x' then x = tonumber(f[i + 1]) end end
      if x == 0 or x > now then break end
      redis.call('XDEL', n0.ev, head[1][1])
    end
  end
  return {removed, #page == LIST_BUDGET and page[#page] or false}
end

-- ocean_sketches: KEYS[1] = o:{R}:m; ARGV route, key -> flat {'~' or '%' .. name, data}: a uniq
-- field's HyperLogLog string, a dist field's hash (HGETALL); {} when the entity is gone.
local function sketches(keys, args)
  local n = names(args[1], args[2])
  if not entity_reply(n, args[2], now_of()) then return {} end
  local held, order = held_of(n)
  local out = {}
  for _, name in ipairs(order) do
    local kind = held[name]
    local data = sketch_data(n, kind, name)
    out[#out + 1] = kind .. name
    out[#out + 1] = kind == '~' and (redis.call('GET', data) or '') or redis.call('HGETALL', data)
  end
  return out
end

local function version(keys, args)
  return VERSION
end

redis.register_function('ocean_write', write)
redis.register_function('ocean_write_many', write_many)
redis.register_function{function_name = 'ocean_get', callback = get, flags = {'no-writes'}}
redis.register_function{function_name = 'ocean_list', callback = list, flags = {'no-writes'}}
redis.register_function('ocean_sweep', sweep)
redis.register_function{function_name = 'ocean_sketches', callback = sketches, flags = {'no-writes'}}
redis.register_function{function_name = 'ocean_version', callback = version, flags = {'no-writes'}}
