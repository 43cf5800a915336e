-- Argo CD health check for xrouter.io/XRouter (resource.customizations.health.xrouter.io_XRouter).
-- Order matters: suspended, then a generation the operator has not observed yet, then the
-- operator's own conditions (Degraded wins over Ready; Ready=False with reason ScaledToZero is
-- Suspended). Tested by tests/packaging/test_pkg_argocd.py.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is set: the operator makes no changes"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local degraded = condition(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

-- A canary or blue-green rollout under analysis: Ready stays True (the stable pods serve), but
-- the change is not done until it is promoted or rolled back (then Degraded, above).
local progressing = condition(conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" and progressing.reason ~= nil
    and (string.sub(progressing.reason, 1, 6) == "Canary"
      or string.sub(progressing.reason, 1, 9) == "BlueGreen") then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Rollout in progress")
  return hs
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "False" and ready.reason == "ScaledToZero" then
  -- replicas: 0 is a choice, not a rollout that never finishes.
  hs.status = "Suspended"
  hs.message = describe(ready, "Scaled to zero")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(condition(conditions, "Progressing"), describe(ready, "Waiting for the XRouter to become Ready"))
return hs
