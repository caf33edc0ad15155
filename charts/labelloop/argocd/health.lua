-- Argo CD health of labelloop's kinds (AnnotationProject, FineTuneJob, PrelabelService).
-- All three report kstatus-style conditions, so one check serves them: Stalled=True is
-- Degraded, Ready=True is Healthy, a training Job waiting in a Kueue queue is Suspended, and
-- anything else (including a spec the operator has not seen yet) is Progressing.
local hs = { status = "Progressing", message = "waiting for the labelloop operator" }
if obj.status == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "the operator has not reconciled the latest spec yet"
  return hs
end
local conditions = {}
for _, condition in ipairs(obj.status.conditions or {}) do
  conditions[condition.type] = condition
end
local stalled, ready, reconciling = conditions["Stalled"], conditions["Ready"], conditions["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ready.reason
elseif reconciling ~= nil and reconciling.status == "True" then
  if reconciling.reason == "Queued" then
    hs.status = "Suspended"
  end
  hs.message = reconciling.message or reconciling.reason
elseif ready ~= nil then
  hs.message = ready.message or ready.reason
end
return hs
