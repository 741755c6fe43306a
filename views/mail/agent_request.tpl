Subject: Agent request from {{NAME}}

Hello,

{{NAME}} <{{EMAIL}}> asked for an agent account.
Approve or reject the request here:

  {{BASE_URL}}/admin/agents

-- 
{{SITE_NAME}}
