-- Replays request paths from a file (one per line) in turn; see benchmarks/wrk_paths.py.
-- wrk ... -s benchmarks/wrk.lua http://127.0.0.1:PORT -- PATHS_FILE
local paths = {}
local next_path = 0

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  next_path = math.random(#paths)
end

function request()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end
