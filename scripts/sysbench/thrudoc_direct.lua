-- sysbench workload: the statements Thrudoc's MySQL backend issues for get and put, sent
-- straight to MariaDB. An independent check of thrudoc-bench's "direct" rate (scripts/bench).
--
--   sysbench scripts/sysbench/thrudoc_direct.lua --placement=FILE \
--       --mysql-host=127.0.0.1 --mysql-port=P1,P2 --mysql-user=thrudoc --mysql-password=... \
--       --mysql-db=thrudoc --threads=20 --time=10 run
--
-- FILE comes from `thrudoc-bench --dump-placement FILE`: one `key<TAB>host<TAB>port<TAB>db.table`
-- line per key, placed by Thrudoc's own code. Each event is a get or a put (50/50) of a
-- uniformly random key, with a value of --size bytes: the mix of `thrudoc-bench --type both`.

sysbench.cmdline.options = {
  placement = {"key placement file (thrudoc-bench --dump-placement)", ""},
  size = {"value size in bytes", 1024},
}

local entries = {}

local function load_placement()
  local path = sysbench.opt.placement
  if path == "" then
    error("--placement=FILE is required (thrudoc-bench --dump-placement FILE)")
  end
  for line in io.lines(path) do
    local key, _, port, tbl = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
    if key then
      entries[#entries + 1] = {key = key, port = port, table = tbl}
    end
  end
  if #entries == 0 then
    error("no keys in " .. path)
  end
end

local conns = {}   -- port -> connection
local stmts = {}   -- table -> {get = {stmt, key}, put = {stmt, key, value}}
local value

function thread_init()
  load_placement()
  local drv = sysbench.sql.driver()
  local wanted, have = {}, 0
  for _, e in ipairs(entries) do
    if wanted[e.port] == nil then
      wanted[e.port] = true
      have = have + 1
    end
  end
  -- sysbench hands out --mysql-port entries round-robin: connect until every port is reached.
  local connected, tries = 0, 0
  while connected < have do
    tries = tries + 1
    if tries > 64 then
      error("could not reach every port of the placement file")
    end
    local con = drv:connect()
    local rs = con:query("SELECT @@port")
    local port = tostring(rs:fetch_row()[1])
    if wanted[port] and conns[port] == nil then
      conns[port] = con
      connected = connected + 1
    else
      con:disconnect()
    end
  end
  for _, e in ipairs(entries) do
    if stmts[e.table] == nil then
      local con = conns[e.port]
      local get = con:prepare("SELECT v FROM " .. e.table .. " WHERE k = ?")
      local get_key = get:bind_create(sysbench.sql.type.VARCHAR, 255)
      get:bind_param(get_key)
      local put = con:prepare("INSERT INTO " .. e.table ..
        " (k, v, modified_at, created_at) VALUES (?, ?, NOW(6), NOW(6))" ..
        " ON DUPLICATE KEY UPDATE v = VALUES(v), modified_at = VALUES(modified_at)")
      local put_key = put:bind_create(sysbench.sql.type.VARCHAR, 255)
      local put_value = put:bind_create(sysbench.sql.type.VARCHAR, sysbench.opt.size)
      put:bind_param(put_key, put_value)
      stmts[e.table] = {get = {get, get_key}, put = {put, put_key, put_value}}
    end
  end
  value = sysbench.rand.string(string.rep("@", sysbench.opt.size))
end

function event()
  local e = entries[sysbench.rand.uniform(1, #entries)]
  local s = stmts[e.table]
  if sysbench.rand.uniform(0, 1) == 0 then
    s.get[2]:set(e.key)
    s.get[1]:execute()
  else
    s.put[2]:set(e.key)
    s.put[3]:set(value)
    s.put[1]:execute()
  end
end

function thread_done()
  for _, con in pairs(conns) do
    con:disconnect()
  end
end
